import { Alert, Button, Card, Form, Input, Select, Tabs } from 'antd';
import { useState } from 'react';
import { api, decodeToken, errorText, type Me, type Role, session } from './api/client';
import { useT } from './i18n';

/** Signing in: a development user (the embedded default's POST /dev/tokens) or a pasted token. */
export function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const t = useT();
  const [error, setError] = useState<string>();
  const [devMissing, setDevMissing] = useState(false);
  const accept = (token: string) => {
    const me = decodeToken(token.trim());
    if (!me) return setError(t('tokenInvalid'));
    session.set(token.trim());
    onSignedIn(me);
  };
  const dev = async (v: { role: Role; sub: string; dept: string }) => {
    setError(undefined);
    const { data, error: e, response } = await api.POST('/dev/tokens', { body: { role: v.role, sub: v.sub, dept: v.dept } });
    if (response.status === 404) return setDevMissing(true);
    if (!data) return setError(errorText(e));
    accept(data.token);
  };
  return (
    <Card title={t('signIn')} style={{ maxWidth: 520, margin: '64px auto' }}>
      {error && <Alert type="error" title={error} style={{ marginBottom: 16 }} showIcon />}
      <Tabs
        items={[
          {
            key: 'dev',
            label: t('devUser'),
            children: devMissing ? (
              <Alert type="info" title={t('devOnly')} />
            ) : (
              <Form layout="vertical" initialValues={{ role: 'super_admin', sub: 'u-admin', dept: 'dept-ops' }} onFinish={dev}>
                <Form.Item name="role" label={t('role')} rules={[{ required: true }]}>
                  <Select options={(['super_admin', 'admin', 'user'] as const).map((r) => ({ value: r, label: r }))} />
                </Form.Item>
                <Form.Item name="sub" label={t('userId')} rules={[{ required: true }]}>
                  <Input />
                </Form.Item>
                <Form.Item name="dept" label={t('department')} rules={[{ required: true }]}>
                  <Input />
                </Form.Item>
                <Button type="primary" htmlType="submit">
                  {t('signIn')}
                </Button>
              </Form>
            ),
          },
          {
            key: 'token',
            label: t('pasteToken'),
            children: (
              <Form layout="vertical" onFinish={(v: { token: string }) => accept(v.token)}>
                <Form.Item name="token" label={t('token')} rules={[{ required: true }]}>
                  <Input.TextArea rows={4} />
                </Form.Item>
                <Button type="primary" htmlType="submit">
                  {t('signIn')}
                </Button>
              </Form>
            ),
          },
        ]}
      />
    </Card>
  );
}

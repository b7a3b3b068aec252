import { App as AntApp, Button, Card, ConfigProvider, Form, Input, Layout, Select, Space, Tabs, Typography, Alert } from 'antd';
import type { Locale } from 'antd/es/locale';
import zhCN from 'antd/locale/zh_CN';
import { useEffect, useState } from 'react';
import { api, decodeToken, errorText, type Me, type Role, session } from './api/client';
import { LangContext, type Lang, useT } from './i18n';
import { ImagesPage } from './ImagesPage';

function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
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
                  <Select
                    options={(['super_admin', 'admin', 'user'] as const).map((r) => ({ value: r, label: r }))}
                  />
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

/**
 * antd's zero-runtime mode: no CSS-in-JS at run time (computing and inserting every component's styles was most
 * of the first render's CPU); the styles come from antd's prebuilt stylesheet (main.tsx imports it), whose
 * design tokens are declared on the class `css-var-_R_0_`, hence the fixed key. The default theme (#1677ff).
 */
const THEME = { zeroRuntime: true, hashed: false, cssVar: { key: 'css-var-_R_0_' } };

export function App() {
  const [lang, setLang] = useState<Lang>(() => (localStorage.getItem('hcm.console.lang') as Lang) || 'zh');
  // zh-CN is the default and is in the first bundle; en_US is fetched when English is chosen
  const [enUS, setEnUS] = useState<Locale>();
  useEffect(() => {
    if (lang === 'en' && !enUS) void import('antd/locale/en_US').then((m) => setEnUS(m.default));
  }, [lang, enUS]);
  const [me, setMe] = useState<Me | null>(() => (session.token ? decodeToken(session.token) : null));
  const switchLang = () => {
    const next = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('hcm.console.lang', next);
    document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
    setLang(next);
  };
  return (
    <LangContext.Provider value={lang}>
      <ConfigProvider locale={lang === 'zh' ? zhCN : enUS} theme={THEME}>
        <AntApp>
          <Layout style={{ minHeight: '100vh' }}>
            <Header me={me} onLang={switchLang} onSignOut={() => (session.clear(), setMe(null))} />
            <Layout.Content style={{ padding: 16 }}>{me ? <ImagesPage me={me} onAuthFailed={() => (session.clear(), setMe(null))} /> : <SignIn onSignedIn={setMe} />}</Layout.Content>
          </Layout>
        </AntApp>
      </ConfigProvider>
    </LangContext.Provider>
  );
}

function Header({ me, onLang, onSignOut }: { me: Me | null; onLang: () => void; onSignOut: () => void }) {
  const t = useT();
  return (
    <Layout.Header style={{ display: 'flex', alignItems: 'center', justifyContent: 'space-between', background: '#001529', padding: '0 16px' }}>
      <Typography.Text style={{ color: '#fff', fontSize: 16 }}>
        HCM · {t('crumb')}
      </Typography.Text>
      <Space>
        {me && (
          <Typography.Text style={{ color: '#fff' }} data-testid="whoami">
            {me.name} ({me.role}, {me.dept})
          </Typography.Text>
        )}
        <Button size="small" onClick={onLang}>
          {t('lang')}
        </Button>
        {me && (
          <Button size="small" onClick={onSignOut}>
            {t('signOut')}
          </Button>
        )}
      </Space>
    </Layout.Header>
  );
}

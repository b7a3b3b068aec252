import { App as AntApp, Button, ConfigProvider, Layout, Space, Typography } from 'antd';
import type { Locale } from 'antd/es/locale';
import zhCN from 'antd/locale/zh_CN';
import { lazy, Suspense, useEffect, useState } from 'react';
import { decodeToken, type Me, session } from './api/client';
import { LangContext, type Lang, useT } from './i18n';
import { ImagesPage } from './ImagesPage';

// the sign-in form is a chunk of its own: a signed-in first load (the usual one) does not download or run it
const SignIn = lazy(() => import('./SignIn').then((m) => ({ default: m.SignIn })));

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
            <Layout.Content style={{ padding: 16 }}>
              {me ? (
                <ImagesPage me={me} onAuthFailed={() => (session.clear(), setMe(null))} />
              ) : (
                <Suspense fallback={null}>
                  <SignIn onSignedIn={setMe} />
                </Suspense>
              )}
            </Layout.Content>
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
      <Typography.Text style={{ color: '#fff', fontSize: 16 }}>HCM · {t('crumb')}</Typography.Text>
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

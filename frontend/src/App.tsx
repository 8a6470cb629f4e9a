import { useEffect, useMemo, useState } from "react";
import { BrowserRouter, NavLink, Navigate, Route, Routes } from "react-router-dom";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { ApiError, forgetKey, loadKey, onUnauthorized } from "./api";
import { I18n, Lang, initialLang, saveLang, translator, useI18n } from "./i18n";
import { Theme, applyTheme, initialTheme } from "./theme";
import { SignIn } from "./pages/SignIn";
import { Dashboard } from "./pages/Dashboard";
import { Providers } from "./pages/Providers";
import { Keys } from "./pages/Keys";
import { Usage } from "./pages/Usage";
import { Audit } from "./pages/Audit";

function makeClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        refetchOnWindowFocus: true,
        // A 4xx will not get better by asking again.
        retry: (n, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && n < 2,
      },
    },
  });
}

export function App() {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [signedIn, setSignedIn] = useState(() => loadKey() !== null);
  const [ended, setEnded] = useState(false);
  const client = useMemo(makeClient, [signedIn]);
  const i18n = useMemo(() => ({
    lang, t: translator(lang), setLang: (l: Lang) => { saveLang(l); setLangState(l); },
  }), [lang]);

  useEffect(() => applyTheme(theme), [theme]);
  useEffect(() => { document.documentElement.lang = lang === "zh" ? "zh-CN" : "en"; }, [lang]);
  useEffect(() => onUnauthorized(() => { setEnded(true); setSignedIn(false); }), []);

  const t = i18n.t;
  const prefs = (
    <div className="prefs">
      <label>
        <span className="sr-only">{t("theme")}</span>
        <select aria-label={t("theme")} value={theme} data-testid="theme"
                onChange={(e) => setTheme(e.target.value as Theme)}>
          <option value="system">{t("themeSystem")}</option>
          <option value="light">{t("themeLight")}</option>
          <option value="dark">{t("themeDark")}</option>
        </select>
      </label>
      <label>
        <span className="sr-only">{t("language")}</span>
        <select aria-label={t("language")} value={lang} data-testid="lang"
                onChange={(e) => i18n.setLang(e.target.value as Lang)}>
          <option value="en">English</option>
          <option value="zh">中文</option>
        </select>
      </label>
    </div>
  );

  return (
    <I18n.Provider value={i18n}>
      <BrowserRouter basename="/ui">
        {!signedIn ? (
          <div className="signin-page">
            <div className="signin-prefs">{prefs}</div>
            <SignIn ended={ended} onSignedIn={() => { setEnded(false); setSignedIn(true); }} />
          </div>
        ) : (
          <QueryClientProvider client={client}>
            <Shell prefs={prefs} onSignOut={() => { forgetKey(); setEnded(false); setSignedIn(false); }} />
          </QueryClientProvider>
        )}
      </BrowserRouter>
    </I18n.Provider>
  );
}

function Shell({ prefs, onSignOut }: { prefs: JSX.Element; onSignOut: () => void }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const links: [string, string][] = [
    ["/", t("navDashboard")], ["/providers", t("navProviders")], ["/keys", t("navKeys")],
    ["/usage", t("navUsage")], ["/audit", t("navAudit")],
  ];
  return (
    <div className="shell">
      <a className="skip" href="#main">{t("skipToContent")}</a>
      <header className="topbar">
        <span className="brand">{t("appName")}</span>
        <button type="button" className="menu-btn" aria-expanded={open} aria-controls="nav"
                onClick={() => setOpen(!open)}>{t("menu")}</button>
        <nav id="nav" className={open ? "nav open" : "nav"} aria-label={t("menu")}>
          {links.map(([to, label]) => (
            <NavLink key={to} to={to} end={to === "/"} onClick={() => setOpen(false)}>{label}</NavLink>
          ))}
        </nav>
        {prefs}
        <button type="button" className="signout" onClick={onSignOut}>{t("signOut")}</button>
      </header>
      <main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<Dashboard />} />
          <Route path="/providers" element={<Providers />} />
          <Route path="/keys" element={<Keys />} />
          <Route path="/usage" element={<Usage />} />
          <Route path="/audit" element={<Audit />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </main>
    </div>
  );
}

// Light, dark, or the system's choice (the default): a data-theme attribute
// on <html> overrides the prefers-color-scheme rules of styles.css.
export type Theme = "system" | "light" | "dark";
const THEME_KEY = "antigw.theme";

export function initialTheme(): Theme {
  const t = localStorage.getItem(THEME_KEY);
  return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(t: Theme): void {
  if (t === "system") {
    document.documentElement.removeAttribute("data-theme");
    localStorage.removeItem(THEME_KEY);
  } else {
    document.documentElement.setAttribute("data-theme", t);
    localStorage.setItem(THEME_KEY, t);
  }
}

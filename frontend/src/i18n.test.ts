import { describe, expect, it } from "vitest";
import { en, translator, zh } from "./i18n";

describe("strings", () => {
  it("has every string in both languages, none empty", () => {
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
    for (const [k, v] of Object.entries(en)) expect(v, k).not.toBe("");
    for (const [k, v] of Object.entries(zh)) expect(v, k).not.toBe("");
  });
  it("keeps the same placeholders in both", () => {
    const holes = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();
    for (const k of Object.keys(en) as (keyof typeof en)[]) expect(holes(zh[k]), k).toEqual(holes(en[k]));
  });
  it("translates Chinese where English words would be", () => {
    const same = (Object.keys(en) as (keyof typeof en)[]).filter((k) => en[k] === zh[k] && /[a-z]{4,}/i.test(en[k]));
    // Names that are the same in both: product and provider names, percentiles.
    expect(same.sort()).toEqual(["appName", "kiroBuilderId", "kiroIdc", "tokenFile"]);
  });
  it("fills placeholders", () => {
    expect(translator("en")("tooManyAttempts", { s: 42 })).toBe("Too many wrong keys from this address. Try again in 42 s.");
    expect(translator("zh")("tooManyAttempts", { s: 42 })).toBe("此地址输错密钥次数过多，请 42 秒后再试。");
  });
});

import { FormEvent, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { AuditPage, api, query } from "../api";
import { useI18n } from "../i18n";
import { fmtTime } from "../logic";
import { ErrorBox, Field, Loading, fieldError } from "../components/ui";

const PAGE = 25;
const TYPES = ["", "provider", "key", "kiro", "copilot"];

/** Newest first; "Older" follows next_before_id, "Newer" goes back through
 * the ids of the pages seen. */
export function Audit() {
  const { t, lang } = useI18n();
  const [filter, setFilter] = useState({ object_type: "", object_id: "" });
  const [draft, setDraft] = useState(filter);
  const [stack, setStack] = useState<number[]>([]); // before_id of each page after the first
  const before = stack.length ? stack[stack.length - 1] : undefined;
  const page = useQuery({
    queryKey: ["audit", filter, before],
    queryFn: () => api.get<AuditPage>(`/admin/audit${query({ limit: PAGE, before_id: before, ...filter })}`),
  });
  const submit = (e: FormEvent) => { e.preventDefault(); setFilter(draft); setStack([]); };
  return (
    <div className="page" data-testid="audit">
      <div className="page-head"><h1>{t("navAudit")}</h1></div>
      <form className="card filters" onSubmit={submit} aria-label={t("filters")}>
        <Field label={t("objectType")} name="object_type" error={fieldError(page.error, "object_type")}>
          {(id, d) => <select id={id} aria-describedby={d} value={draft.object_type} onChange={(e) => setDraft({ ...draft, object_type: e.target.value })}>
            {TYPES.map((x) => <option key={x} value={x}>{x || t("all")}</option>)}
          </select>}
        </Field>
        <Field label={t("objectId")} name="object_id" error={fieldError(page.error, "object_id")}>
          {(id, d) => <input id={id} aria-describedby={d} value={draft.object_id} onChange={(e) => setDraft({ ...draft, object_id: e.target.value })} />}
        </Field>
        <div className="filter-actions"><button type="submit" className="primary">{t("apply")}</button></div>
      </form>
      {page.isPending ? <Loading /> : page.isError ? <ErrorBox err={page.error} retry={page.refetch} /> : (
        <div className="table-wrap card">
          <table data-testid="audit-table">
            <thead><tr><th>{t("time")}</th><th>{t("action")}</th><th>{t("object")}</th><th>{t("name")}</th><th>{t("fields")}</th></tr></thead>
            <tbody>
              {page.data.data.length === 0 && <tr><td colSpan={5} className="muted">{t("nothing")}</td></tr>}
              {page.data.data.map((e) => (
                <tr key={e.id} data-audit-id={e.id}>
                  <td>{fmtTime(e.ts, lang)}</td>
                  <td><code>{e.action}</code></td>
                  <td><button type="button" className="link" onClick={() => {
                        const f = { object_type: e.object_type, object_id: e.object_id };
                        setDraft(f); setFilter(f); setStack([]); }}>{e.object_type} {e.object_id}</button></td>
                  <td>{e.detail?.name ?? ""}</td>
                  <td>{Array.isArray(e.detail?.fields) ? e.detail.fields.join(", ") : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="pager">
            <button type="button" disabled={!stack.length} onClick={() => setStack([])}>{t("newest")}</button>
            <button type="button" disabled={!stack.length} onClick={() => setStack(stack.slice(0, -1))}>{t("newer")}</button>
            <span className="muted">{t("page", { n: stack.length + 1 })}</span>
            <button type="button" disabled={page.data.next_before_id === null}
                    onClick={() => setStack([...stack, page.data.next_before_id!])}>{t("older")}</button>
          </div>
        </div>
      )}
    </div>
  );
}

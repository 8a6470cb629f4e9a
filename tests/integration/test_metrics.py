#!/usr/bin/env python3
"""GET /metrics, POST /v1/embeddings and GET /v1/models through real lighttpd
and a pool of 4 antigw-fcgi processes: pool-wide totals, exact
token counts, promtool, bounded label sets under a flood of made-up model
names, embeddings bytes untouched, the model catalog in both shapes."""

import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (OPENAI_KEY, Gateway, bail, chat, check, directive, eq,  # noqa: E402
                     messages, refused_port, run_suite, standard_config, suite_setup, test)

PROCESSES, THREADS = 4, 8
EMBED_MODEL = "text-embedding-3-small"

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Ctx:
    pass


def scrape(ctx):
    """(raw text, {(name, ((label, value), ...)): float})"""
    status, headers, body = ctx.gw.call("GET", "/metrics", key=None)
    eq(status, 200, "/metrics status")
    check(headers["content-type"].startswith("text/plain; version=0.0.4"),
          headers["content-type"])
    text = body.decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        check(m, "not a sample line: %r" % line)
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        samples[(m.group(1), labels)] = float(m.group(3))
    return text, samples


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, want) in ls for k, want in labels.items()))


def parallel(n, fn, workers=16):
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, range(n)))


@test(timeout=60)
def requests_total_sums_to_n_across_the_pool(ctx):
    _, before = scrape(ctx)
    n = 120

    def one(i):
        if i % 3 == 0:
            s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("hi %d" % i))
        elif i % 3 == 1:
            s, _, _ = ctx.gw.call("POST", "/v1/messages", body=messages("hi %d" % i))
        else:
            s, _, _ = ctx.gw.call("POST", "/v1/chat/completions",
                                  body=chat("hi %d" % i, stream=True))
        return s
    eq(parallel(n, one), [200] * n, "statuses")
    _, after = scrape(ctx)
    eq(total(after, "antigateway_requests_total") - total(before, "antigateway_requests_total"),
       n, "requests_total grew by N")
    eq(total(after, "antigateway_requests_total", status="2xx") -
       total(before, "antigateway_requests_total", status="2xx"), n, "all 2xx")
    eq(total(after, "antigateway_request_duration_seconds_count") -
       total(before, "antigateway_request_duration_seconds_count"), n, "durations observed")
    eq(total(after, "antigateway_gateway_overhead_seconds_count") -
       total(before, "antigateway_gateway_overhead_seconds_count"), n, "overhead observed")
    check(total(after, "antigateway_time_to_first_token_seconds_count") >
          total(before, "antigateway_time_to_first_token_seconds_count"), "ttft observed")
    eq(total(after, "antigateway_streams_in_flight"), 0, "no stream in flight")
    # the pool really spread them: more than one process logged a call
    pids = set(re.findall(r"\[(\d+)\] info: POST /v1/", ctx.gw.log_text()))
    check(len(pids) >= 2, "calls served by one process only: %r" % pids)


@test()
def tokens_total_matches_the_providers_counts(ctx):
    _, before = scrape(ctx)
    s, _, _ = ctx.gw.call("POST", "/v1/messages", body=messages(
        "count " + directive(input_tokens=11, output_tokens=7, cache_read=5, cache_write=3)))
    eq(s, 200, "anthropic status")
    s, _, _ = ctx.gw.call("POST", "/v1/messages", body=messages(
        "count " + directive(input_tokens=11, output_tokens=7, cache_read=5, cache_write=3),
        stream=True))
    eq(s, 200, "anthropic stream status")
    s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat(
        "count " + directive(input_tokens=13, output_tokens=9)))
    eq(s, 200, "openai status")
    _, after = scrape(ctx)

    def delta(provider, model, typ):
        lab = dict(provider=provider, model=model, type=typ)
        return (total(after, "antigateway_tokens_total", **lab) -
                total(before, "antigateway_tokens_total", **lab))
    a = ("mock-anthropic", "claude-sonnet-4-20250514")
    eq([delta(*a, t) for t in ("input", "output", "cache_read", "cache_write")],
       [22, 14, 10, 6], "anthropic tokens")
    eq([delta("mock-openai", "gpt-4o-mini", t) for t in ("input", "output")], [13, 9],
       "openai tokens")


@test()
def upstream_errors_by_class(ctx):
    _, before = scrape(ctx)
    ctx.gw.call("POST", "/v1/chat/completions", body=chat("x " + directive(status=500)))
    ctx.gw.call("POST", "/v1/chat/completions", body=chat("x " + directive(status=429,
                                                                           retry_after=1)))
    ctx.gw.call("POST", "/v1/chat/completions", body=chat("x " + directive(status=400)))
    _, after = scrape(ctx)
    for cls in ("status_5xx", "status_429", "status_4xx"):
        lab = dict(provider="mock-openai", **{"class": cls})
        check(total(after, "antigateway_upstream_errors_total", **lab) >
              total(before, "antigateway_upstream_errors_total", **lab), cls + " counted")


@test()
def failovers_upstream_errors_and_health(ctx):
    _, before = scrape(ctx)
    s, _, d = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model="fo-one"))
    eq(s, 200, "the next provider answered: %r" % d[:200])
    _, after = scrape(ctx)
    eq(total(after, "antigateway_failovers_total", provider="dead") -
       total(before, "antigateway_failovers_total", provider="dead"), 1, "one failover")
    lab = dict(provider="dead", **{"class": "connect"})
    eq(total(after, "antigateway_upstream_errors_total", **lab) -
       total(before, "antigateway_upstream_errors_total", **lab), 1, "one connect error")
    lab = dict(provider="mock-openai", model="other", status="2xx")
    eq(total(after, "antigateway_requests_total", **lab) -
       total(before, "antigateway_requests_total", **lab), 1, "counted once, where it ended")
    # without probes a provider's health is its enabled flag
    eq([total(after, "antigateway_provider_health", provider=p)
        for p in ("mock-openai", "dead", "off")], [1, 1, 0], "health")


@test(timeout=90)
def a_flood_of_made_up_models_stays_bounded(ctx):
    text0, before = scrape(ctx)
    rnd = random.Random(5)
    names = ["zzflood-%08x" % rnd.getrandbits(32) for _ in range(500)]

    def one(i):
        s, _, _ = ctx.gw.call("POST", "/v1/chat/completions", body=chat("x", model=names[i]))
        return s
    eq(parallel(len(names), one), [404] * len(names), "unknown models get 404")
    # names that route (gpt-*) but are no catalog model count as model="other"
    routed = ["gpt-flood-%08x" % rnd.getrandbits(32) for _ in range(50)]
    eq(parallel(len(routed), lambda i: ctx.gw.call(
        "POST", "/v1/chat/completions", body=chat("x", model=routed[i]))[0]),
       [200] * len(routed), "routed made-up names")
    text1, after = scrape(ctx)
    check("flood" not in text1, "a made-up model name became a label")
    lab = dict(provider="none", model="other", status="4xx")
    eq(total(after, "antigateway_requests_total", **lab) -
       total(before, "antigateway_requests_total", **lab), 500, "the flood counted as none/other")
    lab = dict(provider="mock-openai", model="other", status="2xx")
    eq(total(after, "antigateway_requests_total", **lab) -
       total(before, "antigateway_requests_total", **lab), 50, "routed ones as other")
    # at most two new label sets (none/other, mock-openai/other): requests,
    # tokens and a duration histogram (19 lines) each
    grown = len(text1.splitlines()) - len(text0.splitlines())
    check(grown <= 2 * (1 + 2 + 19), "output grew by %d lines" % grown)


@test()
def promtool_accepts_the_output(ctx):
    promtool = shutil.which("promtool")
    check(promtool, "promtool is not installed (deploy/quickstart.sh check installs prometheus)")
    text, _ = scrape(ctx)
    for fam in ("requests_total", "request_duration_seconds", "tokens_total", "provider_health",
                "rate_limit_hits_total", "gateway_overhead_seconds",
                "time_to_first_token_seconds", "streams_in_flight", "failovers_total",
                "upstream_errors_total"):
        check("# HELP antigateway_%s " % fam in text and "# TYPE antigateway_%s " % fam in text,
              fam + " has HELP and TYPE")
    check('antigateway_provider_health{provider="mock-openai"} 1' in text, "health")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    eq((p.returncode, p.stdout.decode() + p.stderr.decode()), (0, ""), "promtool check metrics")


def mock_embeddings(ctx, body):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/embeddings" % ctx.openai.port,
                                 data=body, headers={"Authorization": "Bearer " + OPENAI_KEY,
                                                     "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.read()


@test()
def embeddings_pass_through_byte_for_byte(ctx):
    for fmt in ("float", "base64"):
        body = json.dumps({"model": EMBED_MODEL, "input": ["one", "two \u00e9"],
                           "encoding_format": fmt, "dimensions": 16}).encode()
        ctx.openai.reset()
        s, h, got = ctx.gw.call("POST", "/v1/embeddings", body=body,
                                headers={"Content-Type": "application/json"})
        eq(s, 200, fmt + " status: %r" % got[:200])
        reqs = [r for r in ctx.openai.requests() if r["path"] == "/v1/embeddings"]
        eq(len(reqs), 1, "one upstream request")
        eq(base64.b64decode(reqs[0]["body_b64"]), body, fmt + ": request bytes upstream")
        eq(got, mock_embeddings(ctx, body), fmt + ": response bytes")
        data = json.loads(got)["data"]
        if fmt == "base64":
            eq(len(base64.b64decode(data[0]["embedding"])), 64, "16 float32 values")
        else:
            eq(len(data[0]["embedding"]), 16, "16 floats")
    # a prefix is stripped, nothing else changes
    ctx.openai.reset()
    body = ('{"model":"openai/%s","input":"x","encoding_format":"base64"}' % EMBED_MODEL).encode()
    s, _, _ = ctx.gw.call("POST", "/v1/embeddings", body=body)
    eq(s, 200, "prefixed model")
    up = base64.b64decode([r for r in ctx.openai.requests()
                           if r["path"] == "/v1/embeddings"][0]["body_b64"])
    eq(up, body.replace(b"openai/", b""), "only the prefix removed")


@test()
def embeddings_from_a_non_openai_provider_are_refused(ctx):
    s, _, d = ctx.gw.call("POST", "/v1/embeddings",
                          body={"model": "claude-sonnet-4-20250514", "input": "x"})
    eq(s, 400, "status")
    err = json.loads(d)["error"]
    eq(err["type"], "invalid_request_error", "OpenAI shape")
    check("OpenAI-type" in err["message"] and "mock-anthropic" in err["message"], err["message"])
    s, _, _ = ctx.gw.call("POST", "/v1/embeddings", body={"model": "nope-model", "input": "x"})
    eq(s, 404, "unknown model")


@test()
def models_catalog_in_both_shapes_with_prefixes(ctx):
    s, _, d = ctx.gw.call("GET", "/v1/models")
    eq(s, 200, "status")
    doc = json.loads(d)
    ids = [m["id"] for m in doc["data"]]
    eq(ids, ["gpt-4o-mini", EMBED_MODEL, "claude-sonnet-4-20250514", "openai/gpt-4o-mini",
             "openai/" + EMBED_MODEL, "anthropic/claude-sonnet-4-20250514"], "OpenAI ids")
    check(all(m["object"] == "model" for m in doc["data"]), "object")
    eq(doc["data"][3]["owned_by"], "mock-openai", "owned_by")
    s, _, d = ctx.gw.call("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
    doc = json.loads(d)
    eq([m["id"] for m in doc["data"]], ids, "Anthropic ids")
    check(all(m["type"] == "model" and m["display_name"] and
              re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", m["created_at"])
              for m in doc["data"]), "Anthropic entries")
    eq((doc["has_more"], doc["first_id"], doc["last_id"]),
       (False, "gpt-4o-mini", "anthropic/claude-sonnet-4-20250514"), "paging fields")
    # a prefixed id from the list routes
    s, _, _ = ctx.gw.call("POST", "/v1/messages",
                          body=messages("x", model="anthropic/claude-sonnet-4-20250514"))
    eq(s, 200, "a listed prefixed id works")


def main():
    ctx = Ctx()
    why = suite_setup(ctx)
    if why:
        return bail(why)
    dead = refused_port()
    # "fo-*" names: "dead" first (priority, the higher weight), then mock-openai
    cfg = standard_config(ctx.openai.port, ctx.anthropic.port, dead.getsockname()[1],
                          threads=THREADS)
    cfg = cfg.replace('"gpt-4o-mini", "gpt-*"',
                      '"gpt-4o-mini", "%s", "gpt-*", "fo-*"' % EMBED_MODEL)
    cfg = cfg.replace('models = [ "dead-*" ]; }',
                      'models = [ "fo-*" ]; weight = 1000; },\n'
                      '  { name = "off"; type = "openai"; base_url = "http://127.0.0.1:%d/v1";\n'
                      '    enabled = false; models = [ "off-*" ]; }' % dead.getsockname()[1])
    # no probes: the failover test must not race the prober's verdict
    cfg += 'defaults: { lb_strategy = "priority"; health_check_enabled = false; };\n'
    ctx.gw = Gateway(ctx.work, cfg, processes=PROCESSES, threads=THREADS)
    return run_suite(ctx, stop_after=(ctx.openai, ctx.anthropic, dead))


if __name__ == "__main__":
    sys.exit(main())

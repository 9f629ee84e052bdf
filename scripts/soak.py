#!/usr/bin/env python3
"""Crash soak: mixed load against a collector that is SIGKILLed and restarted every 20-40 s.

The generator records every request the collector acknowledged (2xx) and, at the end, checks
through the management API that each acknowledged check-in and event is stored (a run that
sent `in_progress`, heartbeats and a finish is stored with at least the last status
acknowledged: finished if its finish was), that every
incident opened has its monitor.failed delivery in the outbox (GET /api/v1/alerts), and that
no monitor has more than one open incident or a duplicated incident id. Run by scripts/soak.sh.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

BINARY, DURATION, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "soak-admin-token-0123456789abcdef"
KEY = "0123456789abcdef0123456789abcdef"
MONITORS = [f"soak-{i:03}" for i in range(200)]
ISSUES = [f"SoakError{i}" for i in range(100)]
WORKERS = 4
CONFIG = f"""
[server]
admin_token = "{TOKEN}"

[[projects]]
id = 1
name = "soak"
keys = ["{KEY}"]

[[channels]]
name = "log"
type = "log"

[[rules]]
name = "failures"
on = ["monitor.failed"]
channels = ["log"]

[alerts]
dedup_window = "0s"

[retention]
checkins_per_monitor = 100000
events_per_issue = 10000
"""

lock = threading.Lock()
acked = {"checkin": {}, "event": {}}  # id -> slug / issue
# Runs (in_progress, heartbeats, then ok or error): id -> whether a finish was acknowledged.
runs_finished = {}
open_runs = {}  # slug -> id of a run whose in_progress was acknowledged and not yet finished
counts = {"sent": 0, "acked": 0, "refused": 0, "rejected": 0}
rejections = {}  # (status, path) -> response bodies


def post(path, body, headers):
    request = urllib.request.Request(BASE + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        body = error.read()[:300].decode(errors="replace")
        with lock:
            rejections.setdefault((error.code, path.split("?")[0].rsplit("/", 1)[0]), []).append(body)
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def envelope(items):
    out = b"{}\n"
    for ty, payload in items:
        data = json.dumps(payload).encode()
        out += json.dumps({"type": ty, "length": len(data)}).encode() + b"\n" + data + b"\n"
    return out


def checkin_envelope(slug, status, rid=None):
    """One check-in with monitor_config (which creates the monitor); returns (id, status)."""
    rid = rid or uuid.uuid4().hex
    config = {"schedule": {"type": "interval", "value": 1, "unit": "hour"},
              "failure_issue_threshold": 1}
    body = envelope([("check_in", {"check_in_id": rid, "monitor_slug": slug,
                                   "status": status, "monitor_config": config})])
    code = post("/api/1/envelope/", body,
                {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})
    return rid, code


def create_monitors():
    """Pings do not create monitors (a 404 says so), so every monitor checks in once first."""
    for slug in MONITORS:
        rid, code = checkin_envelope(slug, "ok")
        if code is None or not 200 <= code < 300:
            raise SystemExit(f"could not create monitor {slug}: {code}")
        with lock:
            tally(code, "checkin", rid, slug)


def tally(code, kind, key, owner):
    """Counts one request by its answer (the caller holds `lock`); whether it was acknowledged."""
    counts["sent"] += 1
    if code is None:
        counts["refused"] += 1
        return False
    if 200 <= code < 300:
        counts["acked"] += 1
        acked[kind][key] = owner
        return True
    counts["rejected"] += 1
    return False


def one_request(rng):
    slug = rng.choice(MONITORS)
    status = "error" if rng.random() < 0.005 else "ok"
    roll = rng.random()
    if roll < 0.2:
        one_run_step(rng, slug, status)
        return
    if roll < 0.6:
        rid, code = checkin_envelope(slug, status)
        kind, record = "checkin", (rid, slug)
    elif roll < 0.8:
        rid = str(uuid.uuid4())
        suffix = "/fail" if status == "error" else ""
        code = post(f"/ping/{KEY}/{slug}{suffix}?rid={rid}", b"", {})
        kind, record = "checkin", (rid.replace("-", ""), slug)
    else:
        event_id = uuid.uuid4().hex
        body = envelope([("event", {"event_id": event_id, "level": "error", "platform": "python",
                                    "timestamp": time.time(),
                                    "exception": {"values": [{"type": rng.choice(ISSUES),
                                                              "value": "soak"}]}})])
        code = post("/api/1/envelope/", body,
                    {"X-Sentry-Auth": f"Sentry sentry_key={KEY}, sentry_version=7"})
        kind, record = "event", (event_id, None)
    with lock:
        tally(code, kind, *record)


def one_run_step(rng, slug, status):
    """Starts a run on `slug`, or takes an open one: a heartbeat, or its finish."""
    with lock:
        rid = open_runs.pop(slug, None)
    finish = rid is not None and rng.random() < 0.7
    send = status if finish else "in_progress"
    rid, code = checkin_envelope(slug, send, rid)
    with lock:
        acknowledged = tally(code, "checkin", rid, slug)
        if acknowledged:
            runs_finished[rid] = runs_finished.get(rid, False) or finish
        # Unless its finish was acknowledged, the run stays open (a refused start may have
        # landed before the kill: it is then left to time out, never checked).
        if not (finish and acknowledged) and rid in runs_finished:
            open_runs[slug] = rid


def worker(stop, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        one_request(rng)
        time.sleep(rng.uniform(0.005, 0.03))


def start(data_dir, config_path, log):
    process = subprocess.Popen(
        [BINARY, "serve", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data_dir,
         "--config", config_path],
        stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(BASE + "/healthz", timeout=1).read()
            return process
        except urllib.error.HTTPError:
            return process  # answering at all is enough
        except OSError:
            time.sleep(0.05)
    raise SystemExit("collector did not start")


def api(path):
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


def main():
    work = tempfile.mkdtemp(prefix="watchpost-soak-")
    config_path = os.path.join(work, "watchpost.toml")
    with open(config_path, "w") as f:
        f.write(CONFIG)
    data_dir = os.path.join(work, "data")
    log = open(os.path.join(work, "collector.log"), "ab")
    process = start(data_dir, config_path, log)
    create_monitors()
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(stop, i)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    kills = 0
    end = time.time() + DURATION
    rng = random.Random(42)
    while time.time() < end:
        time.sleep(min(rng.uniform(20, 40), max(0, end - time.time())))
        if time.time() >= end:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        process = start(data_dir, config_path, log)
    stop.set()
    for t in threads:
        t.join()
    # One last kill with nothing in flight: what was acknowledged must survive it too.
    process.send_signal(signal.SIGKILL)
    process.wait()
    kills += 1
    process = start(data_dir, config_path, log)

    try:
        verify(kills)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()
        print(f"data dir and collector log: {work}")


def verify(kills):
    stored_checkins = {}
    for slug in MONITORS:
        for row in json.loads(api(f"/api/v1/monitors/1/{slug}/checkins?limit=1000")):
            stored_checkins[row["id"].replace("-", "")] = row["status"]
    # A run is stored finished if its finish was acknowledged; else in progress or finished
    # (a finish whose answer was lost may have landed).
    wrong_runs = [i for i, finished in runs_finished.items() if i in stored_checkins and
                  (stored_checkins[i] not in ("ok", "error") if finished
                   else stored_checkins[i] not in ("in_progress", "ok", "error"))]
    still_open = sum(1 for s in stored_checkins.values() if s == "in_progress")
    stored_events = set()
    for issue in json.loads(api("/api/v1/issues")):
        text = api(f"/api/v1/issues/{issue['id']}/events?limit=1000")
        stored_events.update(re.findall(r"[0-9a-f]{32}", text.replace("-", "")))
    missing_checkins = [i for i in acked["checkin"] if i not in stored_checkins]
    missing_events = [i for i in acked["event"] if i not in stored_events]

    incidents = json.loads(api("/api/v1/incidents"))
    ids = [i["id"] for i in incidents]
    duplicate_ids = len(ids) - len(set(ids))
    open_per_monitor = {}
    for i in incidents:
        if i["resolved_at"] is None:
            open_per_monitor[i["slug"]] = open_per_monitor.get(i["slug"], 0) + 1
    doubly_open = {s: n for s, n in open_per_monitor.items() if n > 1}
    deliveries = json.loads(api("/api/v1/alerts?limit=1000"))
    failed_alerts = {}
    for d in deliveries:
        if d["kind"] == "monitor.failed":
            for slug in set(re.findall(r"soak-\d{3}", d["title"])):
                failed_alerts[slug] = failed_alerts.get(slug, 0) + 1
    incidents_per_monitor = {}
    for i in incidents:
        incidents_per_monitor[i["slug"]] = incidents_per_monitor.get(i["slug"], 0) + 1
    alert_mismatch = {s: (n, failed_alerts.get(s, 0)) for s, n in incidents_per_monitor.items()
                      if failed_alerts.get(s, 0) != n}

    print(f"duration {DURATION} s, {kills} SIGKILLs")
    print(f"requests {counts['sent']}: acknowledged {counts['acked']}, refused while down "
          f"{counts['refused']}, rejected {counts['rejected']}")
    print(f"check-ins acknowledged {len(acked['checkin'])}, missing {len(missing_checkins)}")
    print(f"runs acknowledged {len(runs_finished)} ({sum(runs_finished.values())} finished), "
          f"in progress at the end {still_open}, stored with a status behind the acknowledged "
          f"one {len(wrong_runs)}")
    print(f"events acknowledged {len(acked['event'])}, missing {len(missing_events)}")
    print(f"incidents {len(incidents)}, duplicate ids {duplicate_ids}, "
          f"monitors with >1 open incident {len(doubly_open)}")
    print(f"monitor.failed deliveries {sum(failed_alerts.values())} of {len(deliveries)} listed; "
          f"monitors whose incident count != alert count {len(alert_mismatch)} {alert_mismatch}")
    for (code, path), bodies in sorted(rejections.items()):
        print(f"rejected {code} on {path}: {len(bodies)}, e.g. {bodies[0]!r}")
    if len(deliveries) >= 1000:
        print("note: /api/v1/alerts lists at most 1000; the alert check is partial")
    ok = not (missing_checkins or missing_events or duplicate_ids or doubly_open or wrong_runs
              or alert_mismatch or counts["rejected"])
    print("SOAK PASSED" if ok else "SOAK FAILED")
    if missing_checkins[:5] or missing_events[:5]:
        print("first missing:", missing_checkins[:5], missing_events[:5])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The reference for collector/tests/it/crontab_reference.rs: what Sentry does with each crontab.

Reads a JSON request on stdin: {"crontabs": [...], "starts": [epoch seconds], "zones": [...],
"count": n}. Answers on stdout with, per crontab, whether Sentry's monitor validator accepts it
and, for each accepted one, zone and start, the next `count` expected times computed as
Sentry's get_next_schedule does (a fresh CronSim from the reference time in the monitor's
zone, truncated to the minute), each one from the previous answer.

The validator steps are Sentry's: collapse whitespace, expand the six lowercase @ aliases and
refuse any other @ word, refuse more than five fields, then iterate forward and backward with
cronsim; CronSimError refuses, and so does StopIteration (no match in 50 years), which Sentry
does not catch and so cannot save a monitor with.
"""

import json
import re
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def normalize(expr):
    schedule = re.sub(r"\s+", " ", expr).strip()
    if not schedule:
        return None
    if schedule.startswith("@"):
        return ALIASES.get(schedule)
    if len(schedule.split()) > 5:
        return None
    return schedule


def sentry_accepts(schedule):
    now = datetime.now(timezone.utc)
    try:
        next(CronSim(schedule, now))
        next(CronSim(schedule, now, reverse=True))
    except (CronSimError, StopIteration):
        return False
    return True


def get_next_schedule(reference, schedule):
    return next(CronSim(schedule, reference)).replace(second=0, microsecond=0)


def chain(schedule, zone, start, count):
    """Each next expected time from the previous one, always strictly later (see the test)."""
    times = []
    raw_not_after = False
    previous = datetime.fromtimestamp(start, timezone.utc)
    for _ in range(count):
        reference = previous.astimezone(zone)
        iterator = CronSim(schedule, reference)
        found = next(iterator).replace(second=0, microsecond=0)
        if found.timestamp() <= previous.timestamp():
            raw_not_after = True
            while found.timestamp() <= previous.timestamp():
                found = next(iterator).replace(second=0, microsecond=0)
        times.append(int(found.timestamp()))
        previous = found
    return times, raw_not_after


def main():
    request = json.load(sys.stdin)
    answer = {"verdicts": {}, "chains": []}
    for expr in request["crontabs"]:
        schedule = normalize(expr)
        accepted = schedule is not None and sentry_accepts(schedule)
        answer["verdicts"][expr] = accepted
        if not accepted:
            continue
        for zone_name in request["zones"]:
            zone = ZoneInfo(zone_name)
            for start in request["starts"]:
                times, raw_not_after = chain(schedule, zone, start, request["count"])
                answer["chains"].append(
                    {
                        "crontab": expr,
                        "zone": zone_name,
                        "start": start,
                        "times": times,
                        "first_not_after": raw_not_after,
                    }
                )
    json.dump(answer, sys.stdout)


main()

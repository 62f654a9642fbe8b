"""Load benchmark: quantserve's endpoints beside a bare FastAPI endpoint, same run, same server.

Both apps run the same way: gunicorn with uvicorn workers under
``deploy/gunicorn.conf.py`` (``--workers``, default 1), on loopback. quantserve runs
in its production configuration: an API key is generated and the server started with
it (requests send ``X-API-Key``), the per-key rate limit on but far above what one
machine can send, the audit trail in a temporary SQLite file, the model in
``models/`` and the features in ``data/``, INFO logs. wrk drives every scenario the
same way (``--threads`` 2, ``--connections`` 16 keep-alive connections, ``--seconds``
each, after a warm-up run) on the same cores as the servers.

The bare endpoint runs first and last; ratios are to the mean of its two runs, and a
large gap between them says the machine's load changed during the run. A scenario in
which any request failed (non-2xx, socket error) is reported as invalid, not as
throughput. The table shows each target of the serving issue with PASS or FAIL; the
results are written as JSON and as a markdown table to ``bench/results/``.

Run: ``make bench-load`` (builds a model first if none exists).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._load_scenarios import BARE, Scenario, scenarios
from bench.harness import (
    ROOT,
    Server,
    WrkResult,
    load_average,
    run_wrk,
)

RESULTS_DIR = ROOT / "bench" / "results"


@dataclass
class Measured:
    """A scenario's result and its verdicts."""

    scenario: str
    result: WrkResult
    targets: dict[str, bool | None] = field(default_factory=dict)
    """Target -> met; None when the run was invalid (failed requests)."""

    @property
    def verdict(self) -> str:
        """PASS, FAIL, INVALID, or - without a target."""
        if not self.result.valid:
            return "INVALID"
        if not self.targets:
            return "-"
        return "PASS" if all(self.targets.values()) else "FAIL"


def baseline(first: WrkResult, last: WrkResult) -> WrkResult:
    """The bare endpoint's two runs merged: mean throughput and mean percentiles."""
    runs = (first, last)
    return WrkResult(
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        p50_ms=(first.p50_ms + last.p50_ms) / 2,
        p90_ms=(first.p90_ms + last.p90_ms) / 2,
        p99_ms=(first.p99_ms + last.p99_ms) / 2,
        max_ms=max(first.max_ms, last.max_ms),
        mean_ms=(first.mean_ms + last.mean_ms) / 2,
    )


def judge(scenario: Scenario, result: WrkResult, bare: WrkResult) -> Measured:
    """``result`` against the scenario's targets, relative to ``bare``."""
    measured = Measured(scenario.name, result)
    for target in scenario.targets:
        measured.targets[target.description] = (
            target.check(result, bare) if result.valid and bare.valid else None
        )
    return measured


def table(rows: list[Measured], bare: WrkResult) -> list[str]:
    """A markdown table of the results, ratios to ``bare``."""
    lines = [
        "| scenario | req/s | vs bare | p50 ms | p99 ms | p99 vs bare | failed | targets |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        r = row.result
        failed = r.non_2xx + r.socket_errors
        targets = "; ".join(
            f"{name}: {'n/a' if met is None else 'PASS' if met else 'FAIL'}"
            for name, met in row.targets.items()
        )
        if r.valid:
            lines.append(
                f"| {row.scenario} | {r.rps:,.0f} | {r.rps / bare.rps:.2f} | {r.p50_ms:.1f} | "
                f"{r.p99_ms:.1f} | {r.p99_ms / bare.p99_ms:.2f} | 0 | {targets or '-'} |"
            )
        else:
            lines.append(
                f"| {row.scenario} | INVALID | - | - | - | - | {failed:,} of {r.requests:,} | "
                f"{targets or '-'} |"
            )
    return lines


def model_instances(client: httpx.Client, count: int) -> list[Any]:
    """``count`` inputs shaped as the serving model's signature asks (random values)."""
    metadata = client.get("/v1/models/forecaster/metadata").raise_for_status().json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (tensor,) = signature["inputs"].values()
    _, lookback, n_features = (int(d["size"]) for d in tensor["tensor_shape"]["dim"])
    rng = np.random.default_rng(0)
    values = rng.normal(size=(count, lookback, n_features)).round(4)
    return list(values.tolist())


def preflight(client: httpx.Client, scenario: Scenario) -> None:
    """One request answered correctly, or stop before measuring anything."""
    response = client.post(scenario.path, content=scenario.body_bytes)
    if response.status_code != 200 or not scenario.expect(response.json()):
        raise RuntimeError(
            f"{scenario.name}: {response.status_code} {response.text[:500]}; "
            "the server does not answer this scenario correctly"
        )


def auth_enforced(client: httpx.Client) -> bool:
    """True when a request without the key is refused (the production configuration)."""
    answer = client.post("/v1/forecasts", json={}, headers={"X-API-Key": ""})
    return answer.status_code == 401


def git_commit() -> str:
    """The checked-out commit, with ``+dirty`` when the tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}+dirty" if dirty else commit or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="per server (default 1)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk seconds before each")
    parser.add_argument(
        "--only", action="append", default=[], help="run scenarios whose name contains this"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()

    key = secrets.token_urlsafe(32)
    digest = hashlib.sha256(key.encode()).hexdigest()
    api_keys = [{"id": "bench", "role": "trader", "sha256": digest}]
    rate = 1_000_000  # per second and burst: far above what wrk sends, so never a 429
    started_at = datetime.now(UTC)
    load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="quantserve-bench-") as tmp:
        workdir = Path(tmp)
        quantserve_env = {
            "QUANTSERVE_API_KEYS": json.dumps(api_keys),
            "QUANTSERVE_LIMITS__RATE_PER_SECOND": str(rate),
            "QUANTSERVE_LIMITS__BURST": str(rate),
            "QUANTSERVE_AUDIT__URL": f"sqlite:///{workdir / 'audit.db'}",
            "QUANTSERVE_LOG_LEVEL": "info",
        }
        servers = {
            BARE: Server(
                BARE,
                "bench.bare_app:app",
                workers=args.workers,
                ready_path="/openapi.json",
                workdir=workdir,
            ),
            "quantserve": Server(
                "quantserve",
                "app.main:create_app()",
                workers=args.workers,
                ready_path="/readyz",
                workdir=workdir,
                env=quantserve_env,
            ),
        }
        headers = {"Content-Type": "application/json", "X-API-Key": key}
        with servers[BARE], servers["quantserve"]:
            with httpx.Client(base_url=servers["quantserve"].url, headers=headers) as client:
                instances = model_instances(client, 64)
                enforced = auth_enforced(client)
            chosen = [
                s
                for s in scenarios(instances)
                if s.server == BARE or not args.only or any(o in s.name for o in args.only)
            ]
            for scenario in chosen:
                with httpx.Client(base_url=servers[scenario.server].url, headers=headers) as c:
                    preflight(c, scenario)

            def drive(scenario: Scenario, seconds: float) -> WrkResult:
                return run_wrk(
                    servers[scenario.server].url + scenario.path,
                    body=scenario.body_bytes,
                    headers=headers,
                    connections=args.connections,
                    threads=args.threads,
                    seconds=seconds,
                )

            def measure(scenario: Scenario, label: str) -> WrkResult:
                if args.warmup > 0:
                    drive(scenario, args.warmup)
                result = drive(scenario, args.seconds)
                state = "ok" if result.valid else f"{result.non_2xx + result.socket_errors} FAILED"
                print(
                    f"  {label:45} {result.rps:8,.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
                    f"p99 {result.p99_ms:6.1f} ms  {state}",
                    flush=True,
                )
                if not result.valid:
                    print(servers[scenario.server].log_tail(10), file=sys.stderr)
                return result

            print(
                f"wrk: {args.threads} threads, {args.connections} connections, "
                f"{args.seconds:g} s per scenario after {args.warmup:g} s of warm-up; "
                f"gunicorn + uvicorn, {args.workers} worker(s) per server; "
                f"load average {load_before[0]:.2f}",
                flush=True,
            )
            bare_scenario, *rest = chosen
            first_bare = measure(bare_scenario, bare_scenario.name + " (first)")
            raw = {s.name: measure(s, s.name) for s in rest}
            last_bare = measure(bare_scenario, bare_scenario.name + " (last)")

    load_after = load_average()
    bare = baseline(first_bare, last_bare)
    rows = [Measured(bare_scenario.name, bare)] + [judge(s, raw[s.name], bare) for s in rest]
    drift = abs(first_bare.rps - last_bare.rps) / max(bare.rps, 1e-9)
    notes = [
        f"{started_at:%Y-%m-%d %H:%M} UTC, commit {git_commit()}, {os.cpu_count()} CPUs; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        f"gunicorn + uvicorn workers: {args.workers} per server; wrk {args.threads} threads, "
        f"{args.connections} connections, {args.seconds:g} s per scenario.",
        "quantserve: API key sent (auth "
        + ("enforced: a request without it gets 401" if enforced else "NOT enforced")
        + f"); rate limit {rate:,}/s per key (never reached); audit in a temporary SQLite "
        "file; INFO access log.",
        f"bare endpoint: {first_bare.rps:,.0f} req/s first, {last_bare.rps:,.0f} last "
        f"({drift:.0%} apart{'; the load changed during the run' if drift > 0.15 else ''}).",
    ]
    markdown = table(rows, bare)
    print()
    print("\n".join(markdown))
    print()
    for note in notes:
        print(f"- {note}")

    args.output.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    report = {
        "started_at": started_at.isoformat(),
        "commit": git_commit(),
        "config": {
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "auth_enforced": enforced,
            "rate_limit_per_second": rate,
        },
        "load_average": {"before": load_before, "after": load_after},
        "bare_runs": {"first": asdict(first_bare), "last": asdict(last_bare)},
        "scenarios": {
            row.scenario: {
                **asdict(row.result),
                "rps": row.result.rps,
                "valid": row.result.valid,
                "rps_vs_bare": row.result.rps / bare.rps,
                "p99_vs_bare": row.result.p99_ms / bare.p99_ms,
                "targets": row.targets,
                "verdict": row.verdict,
            }
            for row in rows
        },
    }
    json_path = args.output / f"load-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    (args.output / f"load-{stamp}.md").write_text(
        "\n".join([*markdown, "", *(f"- {n}" for n in notes)]) + "\n"
    )
    print(f"\nwrote {json_path.relative_to(ROOT)} and the .md beside it")
    if any(row.verdict == "INVALID" for row in rows):
        sys.exit("some scenarios had failed requests: their figures are not throughput")


if __name__ == "__main__":
    main()

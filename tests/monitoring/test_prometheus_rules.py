"""The Prometheus configuration and alert rules, checked by Prometheus's own ``promtool``.

``promtool check config`` parses the configuration and the rule files it loads;
``promtool test rules`` runs the rules' unit tests (made-up series, expected alerts).
Both are skipped, saying so, where promtool is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "config" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
METRIC_NAME = re.compile(r"\bquantserve_[a-z0-9_]+")


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip(
            "promtool is not installed, so the Prometheus config and rule tests are skipped "
            "(`make test` installs it when run as root: apt-get install prometheus)"
        )
    return binary


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The bar-arrival tests make promtool evaluate every rule each minute over five days
    # (about 15 s of CPU): the timeout leaves room for a busy machine.
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=600
    )


def _tests_named(prefix: str) -> dict[str, Any]:
    """The rule tests file with only its test groups whose name starts with ``prefix``."""
    loaded: dict[str, Any] = yaml.safe_load(
        (PROMETHEUS / "tests" / "quantserve-alerts.test.yml").read_text()
    )
    loaded["tests"] = [t for t in loaded["tests"] if t["name"].startswith(prefix)]
    assert loaded["tests"], prefix
    return loaded


def test_promtool_accepts_the_configuration_and_its_rules(promtool: str) -> None:
    result = _run(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", *(str(p) for p in RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_rule_test_that_expects_the_wrong_alert(
    promtool: str, tmp_path: Path
) -> None:
    # The unit tests can fail: the same test expecting the drift alert on rsi_14d,
    # whose PSI of 0.1 is under the threshold, does.
    text = yaml.safe_dump(_tests_named("a PSI above 0.25"), sort_keys=False)
    wrong = text.replace("feature: realized_vol_21d", "feature: rsi_14d")
    assert wrong != text
    broken = tmp_path / "broken.test.yml"
    broken.write_text(wrong.replace("../rules/", f"{PROMETHEUS}/rules/"))
    result = _run(promtool, "test", "rules", str(broken))
    assert result.returncode != 0
    assert "QuantserveFeatureDrift" in result.stdout + result.stderr


def test_a_bar_threshold_blind_to_weekdays_fails_the_weekend_tests(
    promtool: str, tmp_path: Path
) -> None:
    # The same 2.5 days after every bar, whatever its weekday: Friday's bar followed by
    # Monday's fires over the weekend, which the tests forbid.
    rules = yaml.safe_load((PROMETHEUS / "rules" / "quantserve-alerts.yml").read_text())
    (stale,) = [
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "QuantserveModelDataStale"
    ]
    assert "day_of_week(" in stale["expr"]
    stale["expr"] = "time() - quantserve_features_last_bar_arrival_timestamp_seconds > 2.5 * 86400"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = _tests_named("bars each trading day")
    tests["rule_files"] = [str(tmp_path / "rules.yml")]
    (tmp_path / "bars.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _run(promtool, "test", "rules", str(tmp_path / "bars.test.yml"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Monday 21:59 (4d21h59m on the test clock): api-b's Friday bar, 2 days 23:59 old, fires.
    monday = output.split("alertname: QuantserveModelDataStale, time: 4d21h59m,")[1]
    assert 'instance="api-b:8000"' in monday.split("name:")[0], output


def _alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_every_alert_has_a_unit_test_and_the_issue_s_alerts_exist() -> None:
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert set(_alerts()) == tested
    assert {
        "QuantserveTargetDown",
        "QuantserveHighErrorRatio",
        "QuantserveLatencyP99High",
        "QuantserveModelDataStale",
        "QuantserveFeaturesServedLate",
        "QuantserveModelLoadFailed",
        "QuantserveOptimizerFailureRate",
        "QuantserveFeatureDrift",
        "QuantservePipelineQuarantineRatio",
        "QuantserveAuditWriteFailing",
    } <= tested
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name


def test_the_rules_use_only_metrics_the_server_exposes(exposed_sample_names: set[str]) -> None:
    used = {name for rule in _alerts().values() for name in METRIC_NAME.findall(rule["expr"])}
    assert used
    assert used <= exposed_sample_names, used - exposed_sample_names

"""The report's verdict: each strategy's Sharpe test against 1/N, in plain words."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from backtest._plots import EQUAL_WEIGHT, INDEX
from backtest._report_format import (
    MISSING,
    SIGNIFICANCE,
    _fmt,
    _number,
    _p_phrase,
    _p_value,
    _pct,
    _plain,
    _sharpe,
)

# Display names of the Sharpe-difference tests' ``method`` ids (backtest._sharpe).
_METHODS = {
    "ledoit_wolf_2008_hac": "Ledoit-Wolf (2008) HAC test",
    "jobson_korkie_memmel": "Jobson-Korkie-Memmel test",
}


def _test_result(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    test = row.get("vs_equal_weight")
    if not isinstance(test, Mapping):
        return None, None
    return _number(test.get("sharpe_difference")), _number(test.get("p_value"))


def _meaning(difference: float | None, p_value: float | None) -> str:
    """A plain-words reading of one Sharpe test against 1/N (HTML, safe)."""
    if difference is None or p_value is None:
        return "No test result: the comparison with 1/N could not be computed."
    shown = _p_phrase(p_value)
    if p_value < SIGNIFICANCE and difference > 0:
        return (
            f'<span class="good">Significant at 5% ({shown}): beats 1/N.</span> If the two '
            "had the same true Sharpe ratio, a gap this large (either way) would arise by "
            f"chance with probability {'below 0.001' if p_value < 0.001 else f'{p_value:.3f}'}."
        )
    if p_value < SIGNIFICANCE:
        return f'<span class="bad">Significantly worse than 1/N at 5% ({shown}).</span>'
    direction = "higher" if difference > 0 else "lower"
    return (
        f"Not significant at 5% ({shown}): the data cannot tell it apart from 1/N; its "
        f"{direction} Sharpe ratio is within what luck alone produces."
    )


def _verdict_section(
    strategies: Mapping[str, Mapping[str, Any]], order: list[str], settings: Mapping[str, Any]
) -> str:
    names = [n for n in order if n in strategies]
    reference = _number(strategies.get(EQUAL_WEIGHT, {}).get("sharpe"))
    index_row = strategies.get(INDEX)
    index_sharpe = _number(index_row.get("sharpe")) if index_row else None
    rows = []
    for name in names:
        row = strategies[name]
        sharpe = _number(row.get("sharpe"))
        difference, p_value = _test_result(row)
        test = row.get("vs_equal_weight")
        if name == EQUAL_WEIGHT:
            gap, p_cell, meaning = "reference (1/N)", MISSING, "The benchmark of the test."
        else:
            gap = f"{_fmt(sharpe)} vs {_fmt(reference)} ({_fmt(difference, '+.2f')})"
            p_cell, meaning = _p_value(p_value), _meaning(difference, p_value)
            if isinstance(test, Mapping):
                method = _plain(test.get("method"))
                p_cell += f'<span class="desc">{escape(_METHODS.get(method, method))}</span>'
                jkm = _number(test.get("jobson_korkie_memmel_p_value"))
                if jkm is not None:
                    p_cell += f'<span class="desc">Jobson-Korkie-Memmel: {_p_value(jkm)}</span>'
        if name == INDEX:
            versus_index = "reference (index)"
        elif sharpe is None or index_sharpe is None:
            versus_index = MISSING
        else:
            beat = "Yes" if sharpe > index_sharpe else "No"
            versus_index = (
                f"{beat}: Sharpe {_fmt(sharpe)} vs {_fmt(index_sharpe)}, CAGR "
                f"{_pct(row.get('cagr'))} vs {_pct(index_row.get('cagr') if index_row else None)}"
            )
        rows.append(
            f'<tr><td class="name">{escape(name)}</td><td>{gap}</td><td>{p_cell}</td>'
            f'<td class="text">{meaning}</td><td class="text">{versus_index}</td></tr>'
        )
    return (
        '<h2 id="verdict">Verdict: against 1/N and the index</h2>\n'
        f'<p class="headline">{_headline(strategies, names, settings)}</p>\n'
        '<table id="verdict-table"><thead><tr><th class="name">Strategy</th>'
        "<th>Sharpe vs 1/N (difference)</th><th>p-value (test)</th>"
        '<th class="text">What it means</th><th class="text">Beat the index?</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>\n"
        '<p class="small">How to read the p-value: it is the probability of a Sharpe gap at '
        "least this large, in either direction, if the strategy and 1/N truly had the same "
        "Sharpe ratio. It is not "
        "the probability that the strategy is better; and a large p-value does not prove the "
        "two are equal, only that this history is too short or too noisy to tell them apart. "
        "No significance test is made against the index.</p>"
    )


def _headline(
    strategies: Mapping[str, Mapping[str, Any]], names: list[str], settings: Mapping[str, Any]
) -> str:
    if EQUAL_WEIGHT not in strategies:
        return "This run has no 1/N (equal_weight) strategy, so nothing is tested against it."
    candidates = [n for n in names if n not in {EQUAL_WEIGHT, INDEX}]
    tested: dict[str, tuple[float, float]] = {}
    for name in candidates:
        difference, p_value = _test_result(strategies[name])
        if difference is not None and p_value is not None:
            tested[name] = (difference, p_value)
    winners = [n for n, (d, p) in tested.items() if p < SIGNIFICANCE and d > 0]
    losers = [n for n, (d, p) in tested.items() if p < SIGNIFICANCE and d <= 0]
    if not tested:
        sentence = "No strategy has a test result against 1/N."
    elif not winners:
        sentence = (
            f"No strategy beats 1/N significantly: at the 5% level, none of the {len(tested)} "
            "tested strategies has a Sharpe ratio the data can tell apart from simply holding "
            "every stock in equal weight."
        )
        if losers:
            sentence += f" Significantly worse than 1/N: {escape(', '.join(losers))}."
    else:
        listed = ", ".join(f"{escape(n)} ({_p_phrase(tested[n][1])})" for n in winners)
        sentence = (
            f"{len(winners)} of {len(tested)} tested strategies beat 1/N's Sharpe ratio "
            f"significantly at the 5% level: {listed}."
        )
        if len(tested) > 1:
            strict = SIGNIFICANCE / len(tested)
            survivors = [n for n in winners if tested[n][1] < strict]
            sentence += (
                f" With {len(tested)} strategies tested, about {len(tested) * SIGNIFICANCE:.1f} "
                f"would pass by luck alone; at the stricter Bonferroni threshold "
                f"(p &lt; {strict:.4f}) {len(survivors)} still "
                + ("passes" if len(survivors) == 1 else "pass")
                + (f": {escape(', '.join(survivors))}." if survivors else ".")
            )
    index_sharpe = _number(strategies.get(INDEX, {}).get("sharpe"))
    if index_sharpe is not None and candidates:
        beat = [n for n in candidates if _sharpe(strategies[n]) > index_sharpe]
        sentence += (
            f" {len(beat)} of {len(candidates)} strategies had a higher Sharpe ratio than the "
            "index"
            + (
                ", a comparison flattered by survivorship and dividends (see Caveats)."
                if settings.get("source") == "embedded"
                else "."
            )
        )
    return sentence

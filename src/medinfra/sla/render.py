"""The SLA report as JSON (``format: medinfra-sla-report/1``), CSV and bilingual, self-contained HTML (pure).

JSON shape (its JSON Schema: schemas/sla-report.schema.json); times ISO 8601 in the site's zone with its offset,
durations in whole seconds::

    {"format": "medinfra-sla-report/1", "generator": "medinfra X.Y", "site": "lab", "title": "...",
     "month": "2026-11", "timezone": "Asia/Shanghai", "resolution_seconds": 30,
     "period": {"start": ..., "end": ..., "complete": true},      # complete: false while the month runs
     "sources": {"prometheus": URL, "alertmanager": URL}, "met": true,
     "classes": [{"name", "support_hours", "hours": {weekdays, start, end} | null,
                  "targets": {"availability_percent", "acknowledge_minutes", "resolve_minutes", "rpo_minutes"},
                  "systems": [host, ...], "counted_seconds", "up_seconds", "availability_percent" | null,
                  "met", "missed": [reason, ...]}],
     "systems": [{"host", "sla", "services": [...], "counted_seconds", "up_seconds", "down_seconds",
                  "no_data_seconds", "availability_percent" | null, "availability_met", "met",
                  "outages": [{"start", "end", "duration_seconds", "counted_seconds", "services", "alerts",
                               "acknowledged_at" | null, "acknowledged_by" | null, "acknowledge_seconds" | null,
                               "resolve_seconds", "acknowledge_met", "resolve_met", "open_start", "open_end"}],
                  "no_data": [{"start", "end", "duration_seconds", "counted_seconds"}],
                  "daily": [{"date", "availability_percent" | null}]}],
     "backups": [{"host", "set", "sla", "worst_age_seconds" | null, "rpo_seconds", "met"}],
     "not_probed": [host, ...]}

availability_percent is rounded to 6 decimals; whether a target is met is decided on the exact seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from markupsafe import Markup

from medinfra import __version__
from medinfra.report.csv_export import fields
from medinfra.report.html import escaped_environment
from medinfra.report.i18n import LANGUAGES
from medinfra.sla.compute import Miss, Outage, SlaReport, SystemResult, local_time
from medinfra.topology.model import SlaClass

FORMAT = "medinfra-sla-report/1"
GENERATOR = f"medinfra {__version__}"

UI: dict[str, tuple[str, str]] = {
    "title": ("SLA report", "SLA 服务水平月报"),
    "site": ("Site", "站点"),
    "month": ("Month", "月份"),
    "timezone": ("Time zone", "时区"),
    "period": ("Period", "统计区间"),
    "incomplete": ("the month is not over: counted up to its end", "本月尚未结束：统计至区间结束时刻"),
    "resolution": ("Resolution", "时间精度"),
    "resolution_note": (
        "One probe value per step (the scrape interval): an outage runs from its first failed probe to the first "
        "successful one; gaps in the series are \"no data\" and never count as up.",
        "每个步长（采集间隔）取一个探测值：故障从第一次探测失败起，到第一次探测恢复成功止；序列缺失记为“无数据”，"
        "不计入可用时间。",
    ),
    "sources": ("Sources", "数据来源"),
    "generator": ("Generator", "生成工具"),
    "verdict": ("Verdict", "结论"),
    "all_met": ("every SLA class met its targets", "所有 SLA 等级均达标"),
    "some_missed": ("an SLA class missed its targets", "有 SLA 等级未达标"),
    "classes": ("SLA classes", "SLA 等级"),
    "class": ("Class", "等级"),
    "hours": ("Counted hours", "统计时段"),
    "all_hours": ("24x7: every second", "7x24：全部时间"),
    "target": ("Target", "目标"),
    "availability": ("Availability", "可用率"),
    "ack_target": ("Acknowledge within", "响应时限"),
    "resolve_target": ("Resolve within", "解决时限"),
    "rpo": ("RPO", "RPO"),
    "met": ("met", "达标"),
    "missed": ("MISSED", "未达标"),
    "why": ("Why", "原因"),
    "systems": ("Systems", "系统"),
    "host": ("Host", "主机"),
    "services": ("Services", "服务"),
    "up": ("Up", "可用"),
    "down": ("Down", "故障"),
    "no_data": ("No data", "无数据"),
    "counted": ("Counted", "统计时长"),
    "daily": ("Daily availability", "每日可用率"),
    "outages": ("Outages", "故障"),
    "no_outages": ("No outage in the period.", "统计区间内无故障。"),
    "start": ("Start", "开始"),
    "end": ("End", "结束"),
    "duration": ("Duration", "时长"),
    "counted_duration": ("In counted hours", "统计时段内"),
    "alerts": ("Alerts", "告警"),
    "acknowledged": ("Acknowledged", "响应（静默）"),
    "by": ("by", "处理人"),
    "ack_time": ("Time to acknowledge", "响应用时"),
    "resolve_time": ("Time to resolve", "解决用时"),
    "not_acknowledged": ("not acknowledged", "未响应"),
    "no_alert": ("no alert fired", "未触发告警"),
    "ongoing": ("still down at the end", "区间结束时仍故障"),
    "before": ("began before the period", "区间开始前已故障"),
    "gaps": ("No data", "无数据时段"),
    "backups": ("Backups (RPO)", "备份（RPO）"),
    "set": ("Set", "备份集"),
    "worst_age": ("Worst age of the last successful backup", "最近成功备份的最大时延"),
    "none": ("none", "无"),
    "not_probed": ("Hosts without probes", "无探测的主机"),
    "other_language": ("中文版", "English"),
    "verify": (
        "If this report was signed, check it with: medinfra verify DIR --pubkey KEY",
        "若本报告已签名，可用以下命令校验：medinfra verify 目录 --pubkey 公钥",
    ),
}
# Why a class missed, per Miss.kind: {host}, {time} (the outage's start), {availability}, {set}, {age} and the targets.
MISSES: dict[str, tuple[str, str]] = {
    "availability": ("{host}: availability {availability} below {target} %",
                     "{host}：可用率 {availability} 低于 {target}%"),
    "acknowledge": ("{host}: outage at {time} not acknowledged within {ack} min",
                    "{host}：{time} 开始的故障未在 {ack} 分钟内响应"),
    "resolve": ("{host}: outage at {time} not resolved within {resolve} min",
                "{host}：{time} 开始的故障未在 {resolve} 分钟内解决"),
    "rpo": ("{host} backup set {set}: worst age {age} s, RPO {rpo} min",
            "{host} 备份集 {set}：最大时延 {age} 秒，RPO {rpo} 分钟"),
    "rpo_unknown": ("{host} backup set {set}: no backup metric, RPO {rpo} min",
                    "{host} 备份集 {set}：无备份指标，RPO {rpo} 分钟"),
}
CSV_COLUMNS = (
    "record", "host", "sla", "services", "start", "end", "duration_seconds", "counted_seconds",
    "availability_percent", "alerts", "acknowledged_at", "acknowledged_by", "acknowledge_seconds", "met", "detail",
)


def ui(lang: str) -> dict[str, str]:
    index = LANGUAGES.index(lang)
    return {key: texts[index] for key, texts in UI.items()}


def miss_text(miss: Miss, sla: SlaClass, zone: str, lang: str) -> str:
    kind = "rpo_unknown" if miss.kind == "rpo" and miss.age is None else miss.kind
    availability = "n/a" if miss.availability is None else f"{float(miss.availability * 100):.3f} %"
    return MISSES[kind][LANGUAGES.index(lang)].format(
        host=miss.host, time="" if miss.at is None else local_time(miss.at, zone), availability=availability,
        set=miss.backup_set, age=miss.age, target=sla.availability_percent, ack=sla.acknowledge_minutes,
        resolve=sla.resolve_limit_minutes, rpo=sla.rpo_minutes)


def rounded(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value * 100), 6)


def outage_record(outage: Outage, zone: str) -> dict[str, Any]:
    return {
        "start": local_time(outage.start, zone), "end": local_time(outage.end, zone),
        "duration_seconds": outage.duration, "counted_seconds": outage.counted_seconds,
        "services": list(outage.services), "alerts": list(outage.alerts),
        "acknowledged_at": None if outage.acknowledged_at is None else local_time(outage.acknowledged_at, zone),
        "acknowledged_by": outage.acknowledged_by, "acknowledge_seconds": outage.acknowledge_seconds,
        "resolve_seconds": outage.counted_seconds, "acknowledge_met": outage.acknowledge_met,
        "resolve_met": outage.resolve_met, "open_start": outage.open_start, "open_end": outage.open_end,
    }


def system_record(system: SystemResult, zone: str) -> dict[str, Any]:
    return {
        "host": system.host, "sla": system.sla, "services": list(system.services),
        "counted_seconds": system.counted_seconds, "up_seconds": system.up_seconds,
        "down_seconds": system.down_seconds, "no_data_seconds": system.no_data_seconds,
        "availability_percent": rounded(system.availability), "availability_met": system.availability_met,
        "met": system.met,
        "outages": [outage_record(o, zone) for o in system.outages],
        "no_data": [{"start": local_time(g.start, zone), "end": local_time(g.end, zone),
                     "duration_seconds": g.duration, "counted_seconds": g.counted_seconds} for g in system.gaps],
        "daily": [{"date": d.day.isoformat(), "availability_percent": rounded(d.availability)} for d in system.days],
    }


def document(report: SlaReport) -> dict[str, Any]:
    period, zone = report.period, report.period.timezone
    return {
        "format": FORMAT, "generator": GENERATOR, "site": report.site, "title": report.title,
        "month": period.month, "timezone": zone, "resolution_seconds": period.step,
        "period": {"start": local_time(period.start, zone), "end": local_time(period.end, zone),
                   "complete": period.complete},
        "sources": dict(report.sources), "met": report.met,
        "classes": [
            {
                "name": c.sla.name, "support_hours": c.sla.support_hours or "24x7",
                "hours": c.sla.hours.to_dict() if c.sla.hours is not None else None,
                "targets": {"availability_percent": c.sla.availability_percent,
                            "acknowledge_minutes": c.sla.acknowledge_minutes,
                            "resolve_minutes": c.sla.resolve_limit_minutes, "rpo_minutes": c.sla.rpo_minutes},
                "systems": list(c.systems), "counted_seconds": c.counted_seconds, "up_seconds": c.up_seconds,
                "availability_percent": rounded(c.availability), "met": c.met,
                "missed": [miss_text(m, c.sla, zone, "en") for m in c.missed],
            }
            for c in report.classes
        ],
        "systems": [system_record(s, zone) for s in report.systems],
        "backups": [{"host": b.host, "set": b.set, "sla": b.sla, "worst_age_seconds": b.worst_age_seconds,
                     "rpo_seconds": b.rpo_seconds, "met": b.met} for b in report.backups],
        "not_probed": list(report.not_probed),
    }


def json_text(report: SlaReport) -> str:
    return json.dumps(document(report), indent=1, ensure_ascii=False) + "\n"


def csv_lines(report: SlaReport) -> Iterator[str]:
    """One row per class, system, outage, no-data span and backup set; every cell through the formula guard."""
    doc = document(report)
    yield fields(*CSV_COLUMNS) + "\r\n"

    def row(**values: Any) -> str:
        return fields(*("" if values.get(c) is None else str(values[c]) for c in CSV_COLUMNS)) + "\r\n"

    for c in doc["classes"]:
        yield row(record="class", sla=c["name"], counted_seconds=c["counted_seconds"],
                  availability_percent=c["availability_percent"], met=c["met"], detail="; ".join(c["missed"]))
    for s in doc["systems"]:
        yield row(record="system", host=s["host"], sla=s["sla"], services=" ".join(s["services"]),
                  counted_seconds=s["counted_seconds"], availability_percent=s["availability_percent"], met=s["met"],
                  detail=f"up {s['up_seconds']} s, down {s['down_seconds']} s, no data {s['no_data_seconds']} s")
        for o in s["outages"]:
            yield row(record="outage", host=s["host"], sla=s["sla"], services=" ".join(o["services"]),
                      start=o["start"], end=o["end"], duration_seconds=o["duration_seconds"],
                      counted_seconds=o["counted_seconds"], alerts=" ".join(o["alerts"]),
                      acknowledged_at=o["acknowledged_at"], acknowledged_by=o["acknowledged_by"],
                      acknowledge_seconds=o["acknowledge_seconds"],
                      met=o["acknowledge_met"] and o["resolve_met"])
        for g in s["no_data"]:
            yield row(record="no_data", host=s["host"], sla=s["sla"], start=g["start"], end=g["end"],
                      duration_seconds=g["duration_seconds"], counted_seconds=g["counted_seconds"])
    for b in doc["backups"]:
        yield row(record="backup", host=b["host"], sla=b["sla"], met=b["met"],
                  detail=f"set {b['set']}: worst age {b['worst_age_seconds']} s, RPO {b['rpo_seconds']} s")


def csv_text(report: SlaReport) -> str:
    return "".join(csv_lines(report))


def daily_chart(system: SystemResult, floor: float, width: int = 620, height: int = 90) -> Markup:
    """One bar per local day: its availability between `floor` % and 100 % (days without counted hours blank)."""
    count = max(1, len(system.days))
    span = (width - 40) / count
    parts = [f'<line x1="40" x2="{width}" y1="{height - 14}" y2="{height - 14}" stroke="#d0d7de"/>',
             '<text x="36" y="10" text-anchor="end" font-size="9">100%</text>',
             f'<text x="36" y="{height - 14}" text-anchor="end" font-size="9">{floor:g}%</text>']
    inner = height - 24
    for index, day in enumerate(system.days):
        x = 40 + index * span
        if index % 5 == 0:
            parts.append(f'<text x="{x + span / 2:.1f}" y="{height - 2}" text-anchor="middle" '
                         f'font-size="9">{day.day.day}</text>')
        value = day.availability
        if value is None:
            continue
        share = max(0.0, min(1.0, (float(value * 100) - floor) / (100 - floor)))
        bar = max(1.0, inner * share)
        colour = "#1a7f37" if value == 1 else "#bf8700" if float(value * 100) >= floor else "#cf222e"
        parts.append(f'<rect x="{x + 1:.1f}" y="{10 + inner - bar:.1f}" width="{max(1.0, span - 2):.1f}" '
                     f'height="{bar:.1f}" fill="{colour}"><title>{day.day.isoformat()}: '
                     f'{float(value * 100):.3f}%</title></rect>')
    return Markup(f'<svg class="daily" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img">{"".join(parts)}</svg>')


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def html_text(report: SlaReport, lang: str, other_language_file: str) -> str:
    env = escaped_environment("medinfra.sla")
    env.filters.update(duration=duration)
    doc = document(report)
    targets = {c.sla.name: c.sla.availability_percent for c in report.classes}
    charts = {s.host: daily_chart(s, min(99.0, targets[s.sla] - 0.5)) for s in report.systems}
    missed = {c.sla.name: [miss_text(m, c.sla, report.period.timezone, lang) for m in c.missed]
              for c in report.classes}
    return env.get_template("sla.html.j2").render(
        doc=doc, lang=lang, t=ui(lang), charts=charts, missed=missed, other_language_file=other_language_file)

"""A team plan as text for people (English or 中文) and as one JSON document (medinfra-plan-team/1)."""

from __future__ import annotations

from typing import Any

from medinfra.compliance.model import Bilingual
from medinfra.plan.reference import Reference
from medinfra.plan.team import (
    COUNTED,
    WATCH_NONE,
    WATCH_ON_CALL,
    GroupEstimate,
    Plan,
    RoleEstimate,
    ScaleMatch,
    SiteEstimate,
    people,
)
from medinfra.safe_text import one_line

TEAM_FORMAT = "medinfra-plan-team/1"
# The duty watch's key among the roles, as the on-call roles name it.
DUTY_ROLE = "duty"
TIMES = "\N{MULTIPLICATION SIGN}"

# Each count: English singular and plural, 中文.
COUNT_WORDS: dict[str, tuple[str, str, str]] = {
    "hosts": ("host", "hosts", "主机"),
    "servers": ("server", "servers", "服务器"),
    "systems": ("system", "systems", "应用系统"),
    "servers_24x7": ("server in 24x7 classes", "servers in 24x7 classes", "全天候等级服务器"),
    "relays": ("relay", "relays", "远程会诊中继"),
    "interfaces": ("interface", "interfaces", "临床接口"),
    "vendors": ("vendor", "vendors", "厂商"),
    "zones": ("zone", "zones", "安全区域"),
    "legacy_hosts": ("legacy host", "legacy hosts", "遗留主机"),
    "database_pairs": ("database pair", "database pairs", "数据库主备对"),
}

WORDS: dict[str, tuple[str, str]] = {
    "heading": ("Team sizing for site {site} ({title}): {source}", "站点 {site}（{title}）运维团队测算：{source}"),
    "counts": ("Counts: {counts}", "计数：{counts}"),
    "classes": ("{counted} ({classes})", "{counted}（{classes}）"),
    "scale": ("Scale: {scale} (reference {low}-{high} people): {why}", "规模：{scale}（参考 {low}-{high} 人）：{why}"),
    "first": ("{servers}, at most {up_to}", "{servers}，不超过 {up_to} 台"),
    "middle": ("{servers}, more than {above} and at most {up_to}", "{servers}，多于 {above} 台且不超过 {up_to} 台"),
    "last": ("{servers}, more than {above}", "{servers}，多于 {above} 台"),
    "declared": ("declared in site.scale (its {servers} alone: {derived})",
                 "由 site.scale 声明（仅按 {servers} 计应为{derived}）"),
    "estimate": ("Estimate: {fte} FTE, about {people} people (range {low}-{high}): {verdict}",
                 "测算：{fte} FTE，约 {people} 人（区间 {low}-{high}）：{verdict}"),
    "inside": ("inside the reference {low}-{high}", "在参考范围 {low}-{high} 内"),
    "above": ("above the reference {low}-{high}: more work than the scale's usual team; check the counts",
              "高于参考范围 {low}-{high}：工作量超出该规模的常见团队，请核对计数"),
    "below": ("below the reference {low}-{high}: less work than the scale's usual team; check the counts",
              "低于参考范围 {low}-{high}：工作量低于该规模的常见团队，请核对计数"),
    "role": ("{name} {fte} FTE = {formula}", "{name} {fte} FTE = {formula}"),
    "no_watch": ("{name} 0.0 FTE: no server in a 24x7 class", "{name} 0.0 FTE：无全天候等级的服务器"),
    "on_call": ("{name} {fte} FTE = {off} h {times} {weight} ÷ {avail} h: on call from home for {servers} "
                "(fewer than {threshold}: nobody on site)",
                "{name} {fte} FTE = {off} 小时 {times} {weight} ÷ {avail} 小时：{servers}，居家听班"
                "（少于 {threshold} 台：无需现场值守）"),
    "on_site": ("{name} {fte} FTE = {off} h ÷ {avail} h: someone on site for {servers} (at least {threshold})",
                "{name} {fte} FTE = {off} 小时 ÷ {avail} 小时：{servers}，现场值守（至少 {threshold} 台）"),
    "rota": ("Rota:", "排班："),
    "seat": ("One seat round the clock: {week} h a week ÷ {avail} h an FTE covers ({hours} h {times} "
             "{availability}) = {seat} FTE, about {seat_people} people.",
             "一个全天候岗位：每周 {week} 小时 ÷ 每个 FTE 实际可覆盖 {avail} 小时"
             "（{hours} 小时 {times} {availability}）= {seat} FTE，约 {seat_people} 人。"),
    "day": ("The day team works the {business} business hours; nights and weekends are {off} h a week.",
            "白天团队承担每周 {business} 个工作小时；夜间与周末每周 {off} 小时。"),
    "rota_none": ("No server in a 24x7 class: business hours only, no night or weekend watch.",
                  "无全天候等级的服务器：仅工作时间值守，无需夜间与周末值班。"),
    "rota_on_call": ("Nights and weekends on call from home: {people} people take one week in {people} each; the "
                     "rota needs at least {min_rota}: covered by the estimate.",
                     "夜间与周末居家听班：{people} 人轮值，每人每 {people} 周一周；轮值至少需要 {min_rota} 人："
                     "测算已覆盖。"),
    "rota_short": ("Nights and weekends on call from home: {people} people would each take one week in {people}; "
                   "the rota needs at least {min_rota}: not covered by the estimate: share the watch with another "
                   "campus or buy it in (a vendor's or a regional watch), paid by its {fte} FTE.",
                   "夜间与周末居家听班：{people} 人轮值则每人每 {people} 周一周；轮值至少需要 {min_rota} 人："
                   "测算未能覆盖，须与其他院区共享值班或外包（厂商或区域值班），由其 {fte} FTE 支付。"),
    "rota_on_site": ("Nights and weekends on site: {off} h ÷ {avail} h = {fte} FTE, about {watch_people} people "
                     "on night and weekend shifts: covered by the estimate.",
                     "夜间与周末现场值守：{off} 小时 ÷ {avail} 小时 = {fte} FTE，约 {watch_people} 人"
                     "轮值夜班与周末班：测算已覆盖。"),
    "group": ("Hospital group: {campuses} campuses, a team per campus",
              "医疗集团：{campuses} 个院区，每个院区一个团队"),
    "campus": ("{site}: about {people} people ({low}-{high}), {scale} {ref_low}-{ref_high}",
               "{site}：约 {people} 人（{low}-{high}），{scale} {ref_low}-{ref_high}"),
    "group_total": ("Total: {fte} FTE; the teams per campus add up to {people} people (range {low}-{high}): "
                    "{verdict}",
                    "合计：{fte} FTE；各院区团队合计 {people} 人（区间 {low}-{high}）：{verdict}"),
    "shared": ("Shared watch: {sites} cannot keep an on-call rota alone; together their {people} people can, "
               "one week in {people} each.",
               "共享值班：{sites} 无法单独维持居家听班轮值；合并后 {people} 人可以，每人每 {people} 周一周。"),
    "shared_short": ("Shared watch: {sites} cannot keep an on-call rota alone, nor together ({people} people, at "
                     "least {min_rota} needed): buy the night and weekend watch in.",
                     "共享值班：{sites} 无法单独维持居家听班轮值，合并后（{people} 人，至少需要 {min_rota} 人）仍不足："
                     "夜间与周末值班须外包。"),
    "sources": ("Reference: {scales}", "参考依据：{scales}"),
    "constants": ("Constants: {constants}", "常数依据：{constants}"),
}


def word(key: str, lang: str, **values: object) -> str:
    en, zh = WORDS[key]
    return (zh if lang == "zh" else en).format(times=TIMES, **values)


def text_of(text: Bilingual, lang: str) -> str:
    return text.zh if lang == "zh" else text.en


def number(value: int, name: str, lang: str) -> str:
    """`value` of the count `name`: "11 servers", "服务器 11"."""
    singular, plural, zh = COUNT_WORDS[name]
    if lang == "zh":
        return f"{zh} {value}"
    return f"{value} {singular if value == 1 else plural}"


def fte(value: float) -> str:
    return f"{value:.1f}"


def _list(items: list[str], lang: str) -> str:
    return ("、" if lang == "zh" else ", ").join(items)


def counts_text(site: SiteEstimate, lang: str) -> str:
    counts = site.counts
    parts = [number(counts.value(name), name, lang) for name in COUNTED]
    if counts.classes_24x7:
        at = COUNTED.index("servers_24x7")
        parts[at] = word("classes", lang, counted=parts[at], classes=_list(list(counts.classes_24x7), lang))
    return word("counts", lang, counts=_list(parts, lang))


def scale_reason(match: ScaleMatch, servers: int, lang: str) -> str:
    """Why the site has its scale: the bounds of the table its servers fall in, or the declaration."""
    counted = number(servers, "servers", lang)
    if match.declared:
        return word("declared", lang, servers=counted, derived=text_of(match.derived.name, lang))
    up_to = match.derived.up_to_servers
    if match.above is None:
        return word("first", lang, servers=counted, up_to=up_to)
    if up_to is None:
        return word("last", lang, servers=counted, above=match.above)
    return word("middle", lang, servers=counted, above=match.above, up_to=up_to)


def role_line(role: RoleEstimate, lang: str, width: int = 0) -> str:
    formula = " + ".join([f"{role.role.base:g}"] + [f"{number(t.value, t.count, lang)} {TIMES} {t.weight:g}"
                                                      for t in role.terms])
    return word("role", lang, name=text_of(role.role.name, lang).ljust(width), fte=fte(role.fte), formula=formula)


def watch_line(site: SiteEstimate, lang: str, width: int = 0) -> str:
    watch, duty = site.watch, site.watch.duty
    name = text_of(duty.name, lang).ljust(width)
    if watch.mode == WATCH_NONE:
        return word("no_watch", lang, name=name)
    return word(
        "on_call" if watch.mode == WATCH_ON_CALL else "on_site", lang, name=name, fte=fte(watch.fte),
        off=duty.off_hours, weight=f"{duty.on_call_weight:g}", avail=f"{duty.available_hours:g}",
        servers=number(site.counts.servers_24x7, "servers_24x7", lang), threshold=duty.on_site_from_servers,
    )


def verdict(people: int, reference: tuple[int, int], lang: str) -> str:
    low, high = reference
    key = "inside" if low <= people <= high else "above" if people > high else "below"
    return word(key, lang, low=low, high=high)


def rota_lines(site: SiteEstimate, lang: str) -> list[str]:
    duty, mode = site.watch.duty, site.watch.mode
    avail = f"{duty.available_hours:g}"
    lines = [
        word("seat", lang, week=duty.week_hours, avail=avail, hours=duty.fte_hours,
             availability=f"{duty.availability:g}", seat=fte(duty.seat_fte), seat_people=people(duty.seat_fte)),
        word("day", lang, business=duty.business_hours, off=duty.off_hours),
    ]
    if mode == WATCH_NONE:
        return [*lines, word("rota_none", lang)]
    if mode == WATCH_ON_CALL:
        key = "rota_on_call" if site.rota_covered else "rota_short"
        return [*lines, word(key, lang, people=site.people, min_rota=duty.min_rota, fte=fte(site.watch.fte))]
    return [*lines, word("rota_on_site", lang, off=duty.off_hours, avail=avail, fte=fte(site.watch.fte),
                         watch_people=people(site.watch.fte))]


def roles_record(site: SiteEstimate, lang: str) -> list[dict[str, Any]]:
    roles: list[dict[str, Any]] = [
        {
            "role": r.role.key,
            "name": text_of(r.role.name, lang),
            "fte": round(r.fte, 2),
            "base": r.role.base,
            "terms": [{"count": t.count, "value": t.value, "weight": t.weight} for t in r.terms],
            "reason": role_line(r, lang),
        }
        for r in site.roles
    ]
    duty = site.watch.duty
    return [*roles, {"role": DUTY_ROLE, "name": text_of(duty.name, lang), "fte": round(site.watch.fte, 2),
                     "mode": site.watch.mode, "reason": watch_line(site, lang)}]


def site_record(site: SiteEstimate, lang: str) -> dict[str, Any]:
    counts, match, duty = site.counts, site.scale, site.watch.duty
    return {
        "site": counts.site,
        "title": counts.title,
        "source": counts.source,
        "counts": {**{name: counts.value(name) for name in COUNTED}, "classes_24x7": list(counts.classes_24x7)},
        "scale": {
            "key": match.scale.key,
            "name": text_of(match.scale.name, lang),
            "people": list(match.scale.people),
            "declared": match.declared,
            "derived": match.derived.key,
            "reason": scale_reason(match, counts.servers, lang),
        },
        "roles": roles_record(site, lang),
        "total": {"fte": round(site.total, 2), "people": site.people, "low": site.low, "high": site.high},
        "within_reference": site.within_reference,
        "rota": {
            "mode": site.watch.mode,
            "seat_fte": round(duty.seat_fte, 2),
            "off_hours": duty.off_hours,
            "min_rota": duty.min_rota,
            "covered": site.rota_covered,
            "lines": rota_lines(site, lang),
        },
    }


def group_lines(group: GroupEstimate, lang: str) -> list[str]:
    lines = [word("group", lang, campuses=len(group.sites))]
    for site in group.sites:
        low, high = site.scale.scale.people
        lines.append("  " + word("campus", lang, site=site.counts.site, people=site.people, low=site.low,
                                 high=site.high, scale=text_of(site.scale.scale.name, lang), ref_low=low,
                                 ref_high=high))
    lines.append("  " + word("group_total", lang, fte=fte(group.total), people=group.people, low=group.low,
                             high=group.high, verdict=verdict(group.people, group.reference, lang)))
    if group.short_rotas:
        sites = _list([s.counts.site for s in group.short_rotas], lang)
        key = "shared" if group.shared_rota_covered else "shared_short"
        min_rota = group.short_rotas[0].watch.duty.min_rota
        lines.append("  " + word(key, lang, sites=sites, people=group.shared_rota, min_rota=min_rota))
    return lines


def group_record(group: GroupEstimate, lang: str) -> dict[str, Any]:
    return {
        "campuses": [s.counts.site for s in group.sites],
        "total": {"fte": round(group.total, 2), "people": group.people, "low": group.low, "high": group.high},
        "reference": list(group.reference),
        "within_reference": group.within_reference,
        "shared_rota": {"campuses": [s.counts.site for s in group.short_rotas], "people": group.shared_rota,
                        "covered": group.shared_rota_covered} if group.short_rotas else None,
        "lines": group_lines(group, lang),
    }


def site_text(site: SiteEstimate, lang: str) -> list[str]:
    counts, match = site.counts, site.scale
    low, high = match.scale.people
    # English names padded so that the figures line up; 中文 characters are twice as wide as ljust counts.
    names = [r.role.name for r in site.roles] + [site.watch.duty.name]
    width = max(len(name.en) for name in names) if lang == "en" else 0
    return [
        word("heading", lang, site=counts.site, title=counts.title, source=counts.source),
        counts_text(site, lang),
        word("scale", lang, scale=text_of(match.scale.name, lang), low=low, high=high,
             why=scale_reason(match, counts.servers, lang)),
        word("estimate", lang, fte=fte(site.total), people=site.people, low=site.low, high=site.high,
             verdict=verdict(site.people, match.scale.people, lang)),
        *("  " + role_line(r, lang, width) for r in site.roles),
        "  " + watch_line(site, lang, width),
        word("rota", lang),
        *("  " + line for line in rota_lines(site, lang)),
    ]


def team_text(plan: Plan, reference: Reference, lang: str) -> str:
    """The plan for people: per site its counts, scale, estimate per role and rota; the group; the sources."""
    blocks = [site_text(site, lang) for site in plan.sites]
    if plan.group is not None:
        blocks.append(group_lines(plan.group, lang))
    blocks.append([word("sources", lang, scales=text_of(reference.source, lang)),
                   word("constants", lang, constants=text_of(reference.constants_source, lang))])
    return "\n\n".join("\n".join(one_line(line) for line in block) for block in blocks)


def team_record(plan: Plan, reference: Reference, lang: str) -> dict[str, Any]:
    return {
        "format": TEAM_FORMAT,
        "lang": lang,
        "sites": [site_record(site, lang) for site in plan.sites],
        "group": group_record(plan.group, lang) if plan.group is not None else None,
        "sources": {"scales": text_of(reference.source, lang), "constants": text_of(reference.constants_source, lang)},
    }

"""The project configuration (`config/steward.toml`): city, registries, allowlist, limits.

Registries are data: a fourth one (say 民政局, department 5) is a new
`[[sources]]` entry, never code.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from validators.regions import regions
from validators.tables import DEPARTMENTS, KINDS

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "steward.toml"
#: Canonical fields of an extract; the first three are required (docs/data-dir.md#columns).
FIELDS = ("record_id", "uscc", "name", "entity_type", "legal_rep", "established", "status", "address")
REQUIRED_FIELDS = ("record_id", "uscc", "name")
DEFAULT_DATABASE = "state/steward.sqlite3"
#: Days an error has from first seen to due when `[due]` says nothing (warnings 60, info notes 90).
DEFAULT_OVERDUE_DAYS = 30


class ConfigError(ValueError):
    """The configuration file is wrong; the message says where and how to fix it."""


@dataclass(frozen=True)
class Source:
    key: str
    name: str
    departments: tuple[str, ...]
    columns: dict[str, tuple[str, ...]]  # canonical field → accepted headers


@dataclass(frozen=True)
class City:
    name: str
    province: str
    jurisdiction_prefix: str
    name_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    """What a file may declare before it is parsed (`[limits]`); beyond them it is refused, not read.

    The defaults are far above any real registry export and far below what makes a parser
    take the machine down (see the comments in `config/steward.toml`).
    """

    max_file_bytes: int = 3 << 30
    csv_max_line_bytes: int = 1 << 20
    csv_max_lines: int = 20_000_000
    max_columns: int = 1_000
    xlsx_max_rows: int = 1_048_576
    xlsx_max_cells: int = 40_000_000
    xlsx_max_member_bytes: int = 2 << 30
    xlsx_max_total_bytes: int = 4 << 30
    xlsx_max_ratio: int = 200
    xlsx_max_members: int = 1_000
    xlsx_max_sheets: int = 100
    xlsx_parser_memory_mb: int = 6_144
    xlsx_parser_seconds: int = 600
    return_max_bytes: int = 1 << 30
    return_max_rows: int = 2_000_000
    render_apart_records: int = 2_000_000


@dataclass(frozen=True)
class Settings:
    city: City
    sources: tuple[Source, ...]
    allowlist: dict[str, str] = field(default_factory=dict)
    #: The ledger's SQLite file, relative to the data directory unless absolute.
    database: str = DEFAULT_DATABASE
    #: Plausibility guard (`checks.guard`): share of the last accepted extract's records that may vanish.
    max_lost_share: float = 0.10
    #: Plausibility guard: days over which the records lost night after night add up (0: only night by night).
    erosion_days: int = 30
    #: Nights a failed night's work folder is kept for diagnosis (a completed night's is removed at once).
    keep_failed_work_nights: int = 3
    #: Days from first seen to due, by severity and (overriding it) by kind (`[due]`, `[due.kinds]`).
    due_days: dict[str, int] = field(default_factory=lambda: {"error": DEFAULT_OVERDUE_DAYS, "warning": 60, "info": 90})
    limits: Limits = field(default_factory=Limits)

    def source(self, key: str) -> Source:
        for source in self.sources:
            if source.key == key:
                return source
        raise KeyError(key)

    @property
    def source_names(self) -> dict[str, str]:
        return {s.key: s.name for s in self.sources}

    @property
    def departments(self) -> dict[str, tuple[str, ...]]:
        """Each registry's GB 32100 department codes."""
        return {s.key: s.departments for s in self.sources}

    def owner_of_department(self, dept: str) -> str | None:
        """Key of the registry that issues codes of this department, if configured."""
        for source in self.sources:
            if dept in source.departments:
                return source.key
        return None


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and check the configuration (default: `config/steward.toml`, or $USCC_CONFIG)."""
    path = Path(path or os.environ.get("USCC_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"找不到配置文件 {path}。") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"配置文件 {path} 格式错误：{exc}") from None
    return parse_settings(raw, where=str(path))


#: The keys each table of the configuration may hold: a misspelt one is an error, never a silent default (an
#: `[gaurd]` would leave the guard at 10 % while the steward believes it at 2 %).
KNOWN_KEYS = {"": {"city", "state", "due", "guard", "limits", "sources", "allowlist"},
              "city": {"name", "province", "jurisdiction_prefix", "name_prefixes"},
              "state": {"database", "keep_failed_work_nights"}, "guard": {"max_lost_share", "erosion_days"},
              "sources": {"key", "name", "departments", "columns"}, "allowlist": {"code", "reason"}}
#: A source key names folders and report files: letters, digits, `_` and `-`, starting with a letter.
SOURCE_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
#: An allowlisted code: 18 characters of GB 32100's alphabet (it may fail a rule: that is why it is listed).
ALLOWLIST_CODE_RE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{18}")


def _unknown_keys(raw: dict, where: str) -> None:
    def check(table: object, name: str, shown: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}：{shown} 应为一个表（TOML table），现为 {table!r}。")
        unknown = sorted(set(table) - KNOWN_KEYS[name])
        if unknown:
            raise ConfigError(f"{where}：{shown}中有未知的配置项 {unknown}（可能是拼写错误），可用的配置项为 "
                              f"{sorted(KNOWN_KEYS[name])}。未知项不会被忽略，请改正后再运行。")

    check(raw, "", "配置文件顶层")
    for name in ("city", "state", "guard"):
        if name in raw:
            check(raw[name], name, f"[{name}] ")
    for name in ("sources", "allowlist"):
        entries = raw.get(name, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{where}：[[{name}]] 应为一组表（TOML array of tables）。")
        for i, entry in enumerate(entries, 1):
            check(entry, name, f"第 {i} 个 [[{name}]] ")


def _checked_city(city: City, where: str) -> City:
    prefix = city.jurisdiction_prefix
    if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", prefix) or not any(r.startswith(prefix) for r in regions()):
        raise ConfigError(f"{where}：[city] jurisdiction_prefix = {prefix!r} 不是 GB/T 2260 中已有的行政区划代码前缀"
                          "（应为 2、4 或 6 位数字，如 \"2304\" 表示鹤岗市）。辖区前缀决定哪些代码属于本市，写错会使大量"
                          "问题被误报或误判为已更正。")
    return city


def parse_settings(raw: dict, where: str = "配置") -> Settings:
    _unknown_keys(raw, where)
    try:
        c = raw["city"]
        city = _checked_city(City(c["name"], c.get("province", ""), str(c["jurisdiction_prefix"]),
                                  tuple(c.get("name_prefixes", ()))), where)
        sources = []
        for i, s in enumerate(raw["sources"], 1):
            if not isinstance(s["key"], str) or not SOURCE_KEY_RE.fullmatch(s["key"]):
                raise ConfigError(f"{where}：第 {i} 个 [[sources]] 的 key = {s['key']!r} 无效：key 用作文件夹和报告文件名，"
                                  "只能由字母、数字、“_”、“-”组成并以字母开头（如 market），最长 40 个字符。")
            if not isinstance(s["name"], str) or not s["name"].strip():
                raise ConfigError(f"{where}：来源 {s['key']} 的 name（单位名称）不能为空。")
            departments = tuple(str(d) for d in s["departments"])
            unknown = [d for d in departments if d not in DEPARTMENTS]
            if unknown:
                raise ConfigError(f"{where}：第 {i} 个 [[sources]]（{s['key']}）的部门代码 {unknown} 不是 GB 32100 的登记管理部门码。")
            columns = {k: tuple([v] if isinstance(v, str) else v) for k, v in s.get("columns", {}).items()}
            missing = [f for f in REQUIRED_FIELDS if not columns.get(f)]
            if missing:
                raise ConfigError(f"{where}：来源 {s['key']} 缺少必需字段 {missing} 的列名配置。")
            extra = sorted(set(columns) - set(FIELDS))
            if extra:
                raise ConfigError(f"{where}：来源 {s['key']} 有未知字段 {extra}，可用字段为 {list(FIELDS)}。")
            sources.append(Source(str(s["key"]), s["name"], departments, columns))
        keys = [s.key for s in sources]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{where}：来源 key 重复：{keys}")
        allowlist = {str(e["code"]).strip().upper(): e["reason"] for e in raw.get("allowlist", [])}
        bad = [code for code in allowlist if not ALLOWLIST_CODE_RE.fullmatch(code)]
        if bad:
            raise ConfigError(f"{where}：[[allowlist]] 中的 code {bad} 不是 18 位统一社会信用代码（只能用数字和"
                              "除 I、O、Z、S、V 外的大写字母）。请改正或删除该条目。")
    except KeyError as exc:
        raise ConfigError(f"{where}：缺少配置项 {exc}。") from None
    state = raw.get("state", {})
    database = str(state.get("database", DEFAULT_DATABASE))
    keep = state.get("keep_failed_work_nights", 3)
    share = raw.get("guard", {}).get("max_lost_share", 0.10)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise ConfigError(f"{where}：[guard] max_lost_share 应为 0 到 1 之间的小数（如 0.10 表示 10%），现为 {share!r}。")
    erosion = raw.get("guard", {}).get("erosion_days", 30)
    if isinstance(erosion, bool) or not isinstance(erosion, int) or not 0 <= erosion <= 3650:
        raise ConfigError(f"{where}：[guard] erosion_days 应为 0 到 3650 之间的天数（0 表示只逐日比较），现为 {erosion!r}。")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ConfigError(f"{where}：[state] keep_failed_work_nights 应为不小于 0 的整数，现为 {keep!r}。")
    due = {"error": 30, "warning": 60, "info": 90}
    given = dict(raw.get("due", {}))
    kinds = given.pop("kinds", {})
    for key, days in {**given, **kinds}.items():
        if key in given and key not in due:
            raise ConfigError(f"{where}：[due] 只能设置 error、warning、info（按问题类型请用 [due.kinds]），现有 {key}。")
        if key in kinds and key not in KINDS:
            raise ConfigError(f"{where}：[due.kinds] 中的 {key} 不是问题类型；可用：{'、'.join(KINDS)}。")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise ConfigError(f"{where}：期限 {key} = {days!r} 应为 1 到 3650 之间的天数。")
        due[key] = days
    return Settings(city, tuple(sources), allowlist, database, float(share), erosion, keep, due,
                    parse_limits(raw.get("limits", {}), where))


def parse_limits(raw: dict, where: str = "配置") -> Limits:
    """`[limits]`: positive integers; an unknown key is an error (a typo must not leave a limit at its default)."""
    known = Limits.__dataclass_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}：[limits] 中有未知的配置项 {unknown}，可用的配置项为 {sorted(known)}。")
    bad = [k for k, v in raw.items() if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
    if bad:
        raise ConfigError(f"{where}：[limits] 中的 {bad} 必须是正整数。")
    return Limits(**raw)

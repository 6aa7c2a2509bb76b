"""Synthetic Hegang registry extracts with planted problems and their ground truth.

`generate(out, records=N, seed=S)` writes a data directory (SPEC §4 layout):

    extracts/editorial/编办_机构名录.csv        GB18030 CSV
    extracts/market/市场主体名录.xlsx          XLSX (UTF-8 BOM CSV above --xlsx-max records)
    extracts/justice/司法行政机构名录.csv      UTF-8 with BOM CSV
    truth/findings.csv                       what a perfect run finds: source, record_id, kind,
                                             expected_code, derivable
    truth/near_miss.csv                      pairs of different entities that must not be linked

Entities are generated in chunks (memory stays flat at 10^7 records); every
planted problem is recorded at the moment it is planted. Record-level kinds of
a damaged code are what the GB 32100 rules say of it (the validator is tested
on its own against the standard); which records carry cross-record problems
is known only here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from validators.tables import ALPHABET, DEPARTMENTS
from validators.uscc import calc_check_char, calc_org_check_char, check

CHUNK = 50_000


class _Flag:
    """Whether tonight's market extract is XLSX (number cells exist only there)."""

    value = True

    def get(self) -> bool:
        return self.value


MARKET_AS_XLSX = _Flag()
REGIONS = ["230402", "230403", "230404", "230405", "230406", "230407", "230421", "230422", "230400", "230401"]
DISTRICTS = {"230402": "向阳区", "230403": "工农区", "230404": "南山区", "230405": "兴安区", "230406": "东山区",
             "230407": "兴山区", "230421": "萝北县", "230422": "绥滨县"}
OUTSIDE_REGIONS = ["230100", "230800", "110105", "100000"]
ZIHAO = ("宏发达兴盛昌隆泰鑫源丰华恒通利嘉祥瑞福禄寿康安和顺美佳信诚德仁义礼智勇晟昊宇航天地金银铜铁"
         "山川河海江湖林森木石玉龙凤麟鹏鸿雁云雷电光明辉煌灿烂春夏秋冬东南西北中正大众汇聚鼎旺")
INDUSTRY = ["商贸", "煤业", "建材", "农业科技", "物流", "餐饮管理", "建筑工程", "石墨新材料", "医药", "电子科技",
            "房地产开发", "木业", "汽车销售", "文化传媒", "环保科技", "能源", "机械制造", "粮油", "劳务派遣", "信息技术"]
FORMS = ["有限公司", "有限责任公司", "股份有限公司"]
SHOPS = ["烧烤店", "超市", "五金商店", "理发店", "小吃部", "水果店", "药店", "干洗店", "面馆", "手机维修部"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬飞鹏辉建国建华志强海波德明凤兰春梅宏伟"
STREETS = ["红旗路", "新华街", "工农路", "南山路", "东山街", "胜利路", "解放路", "和平街", "建设路", "振兴路"]
#: (department, category, the type words registries write for it, name patterns); the first type is the usual one.
EDITORIAL_KINDS = [("1", "1", ("机关", "行政机关", "党政机关"), ["{d}{z}管理局", "{d}{z}办公室"]),
                   ("1", "2", ("事业单位", "公益一类事业单位", "公益二类"),
                    ["鹤岗市{z}中心", "{d}{z}服务中心", "鹤岗市{z}医院", "鹤岗市{z}学校"]),
                   ("1", "3", ("群众团体", "人民团体", "群团组织"), ["鹤岗市{z}联合会", "{d}{z}归国华侨联合会"]),
                   ("1", "9", ("其他", "临时机构"), ["鹤岗市{z}协会筹备处"])]
JUSTICE_KINDS = [("3", "1", "律师事务所", "黑龙江{z}律师事务所"), ("3", "3", "基层法律服务所", "{d}{z}法律服务所"),
                 ("1", "2", "公证处", "鹤岗市{z}公证处"), ("1", "2", "司法鉴定机构", "鹤岗市{z}司法鉴定所")]
HEADERS = {
    "editorial": ["机构编号", "统一社会信用代码", "机构名称", "机构类别", "法定代表人", "成立日期", "状态", "地址", "备注"],
    "market": ["主体编号", "统一社会信用代码", "主体名称", "主体类型", "法定代表人", "成立日期", "登记状态", "住所"],
    "justice": ["机构编号", "统一社会信用代码", "机构名称", "机构类型", "负责人", "批准日期", "状态", "地址"],
}
FILES = {"editorial": "编办_机构名录.csv", "market": "市场主体名录.xlsx", "justice": "司法行政机构名录.csv"}


@dataclass(frozen=True)
class Entity:
    dept: str
    cat: str
    region: str
    body: str
    name: str
    entity_type: str
    legal_rep: str
    address: str
    established: str
    status: str = "存续"

    @property
    def code(self) -> str:
        first17 = self.dept + self.cat + self.region + self.body + calc_org_check_char(self.body)
        return first17 + calc_check_char(first17)


@dataclass
class Record:
    source: str
    record_id: str
    code: str
    entity: Entity
    name: str | None = None
    numeric: bool = False  # written as a number cell in XLSX

    def row(self) -> list:
        e = self.entity
        return [self.record_id, self.code, self.name or e.name, e.entity_type, e.legal_rep, e.established, e.status,
                e.address]


class Truth:
    def __init__(self):
        self.findings: list[tuple] = []
        self.near_miss: list[tuple] = []

    def add(self, record: Record, kind: str, expected: str = "", derivable: bool = False):
        self.findings.append((record.source, record.record_id, kind, expected, "1" if derivable else "0"))

    def add_record_kinds(self, record: Record, expected: str = "", derivable: bool = False, numeric=False,
                         text=False):
        """Record-level kinds of a damaged code, as the GB 32100 rules name them."""
        for finding in check(record.code, numeric=numeric, text=text, suggest=False).findings:
            if finding.severity != "info" or finding.kind == "formatting":
                is_error = finding.severity == "error"
                self.add(record, finding.kind, expected if is_error else "", derivable and is_error)


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.serial = 0

    # -- identities -------------------------------------------------------
    def _zihao(self, n: int) -> str:
        chars = []
        base = len(ZIHAO)
        n += base  # at least two characters
        while n:
            n, r = divmod(n, base)
            chars.append(ZIHAO[r])
        return "".join(reversed(chars))

    def _body(self, digits_only: bool) -> str:
        """A unique 8-character organization-code body (MA… new style or 8 digits)."""
        self.serial += 1
        if digits_only:
            return f"{(self.serial * 7919 + 10_000_000) % 100_000_000:08d}"
        n, out = self.serial * 104729 % 887_503_681, []
        for _ in range(6):
            n, r = divmod(n, 31)
            out.append(ALPHABET[r])
        return "MA" + "".join(out)

    def _person(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2))))

    def _address(self, region: str) -> str:
        district = DISTRICTS.get(region, "")
        return f"黑龙江省鹤岗市{district}{self.rng.choice(STREETS)}{self.rng.randint(1, 300)}号"

    def _date(self) -> str:
        return self._spell_date(dt.date(1990, 1, 1) + dt.timedelta(days=self.rng.randint(0, 12000)))

    def _spell_date(self, day: dt.date) -> str:
        return self.rng.choice((day.isoformat(), day.strftime("%Y/%m/%d"), day.strftime("%Y年%m月%d日")))

    def respell_date(self, text: str) -> str:
        """The same day written as another clerk would write it."""
        return self._spell_date(_parse_date(text))

    def other_date(self, text: str) -> str:
        """Another day than `text` (two businesses that opened on different days)."""
        day = _parse_date(text)
        return self._spell_date(day + dt.timedelta(days=self.rng.choice((-1, 1)) * self.rng.randint(1, 3000)))

    def moved_address(self, entity: "Entity") -> str:
        """Where a business moved to: another house number, a flat, a village, another county."""
        old = entity.address
        number = int((re.findall(r"(\d+)号", old) or ["0"])[-1])
        new_number = number + self.rng.randint(1, 200)
        district = DISTRICTS.get(entity.region, "")
        style = self.rng.choice(["number", "flat", "village", "county", "short"])
        if style == "number":
            return re.sub(r"\d+号", f"{new_number}号", old)
        if style == "flat":
            return re.sub(r"\d+号", f"{new_number}号{self.rng.randint(1, 6)}单元{self.rng.randint(101, 1805)}室", old)
        if style == "village":
            town = self.rng.choice(["北岗乡", "忠仁镇", "新华镇", "太平沟乡", "团结镇"])
            return f"{district or '绥滨县'}{town}{self._zihao(self.rng.randint(0, 900))}村"
        if style == "county":
            elsewhere = self.rng.choice([d for d in DISTRICTS.values() if d != district])
            return f"黑龙江省鹤岗市{elsewhere}{self.rng.choice(STREETS)}{new_number}号"
        return f"{district}{self.rng.choice(STREETS)}{new_number}号"  # written without the province and city

    def entity(self, dept, cat, name, entity_type, *, region=None, digits_only=False, legal_rep=None) -> Entity:
        region = region or self.rng.choice(REGIONS)
        e = Entity(dept, cat, region, self._body(digits_only), name, entity_type, legal_rep or self._person(),
                   self._address(region), self._date(), self.rng.choices(("存续", "注销", "吊销"), (90, 7, 3))[0])
        if digits_only:  # all-digit codes need digit check characters
            while not e.code.isdigit():
                e = replace(e, body=self._body(True))
        return e

    def market_entity(self, i: int) -> Entity:
        roll = self.rng.random()
        region = self.rng.choice(REGIONS)
        if roll < 0.55:
            name = f"{self.rng.choice(['鹤岗市', '鹤岗', '黑龙江', ''])}{self._zihao(i)}{self.rng.choice(INDUSTRY)}{self.rng.choice(FORMS)}"
            return self.entity("9", "1", name, self.rng.choice(["有限责任公司", "股份有限公司", "有限责任公司（自然人独资）"]),
                               region=region, digits_only=self.rng.random() < 0.3)
        if roll < 0.95:
            district = DISTRICTS.get(region, "鹤岗市")
            name = f"{district}{self._zihao(i)}{self.rng.choice(SHOPS)}"
            return self.entity("9", "2", name, "个体工商户", region=region)
        village = self._zihao(i)
        return self.entity("9", "3", f"萝北县{village}村{self.rng.choice(['水稻', '大豆', '蔬菜'])}种植专业合作社",
                           "农民专业合作社", region="230421")

    def editorial_entity(self, i: int) -> Entity:
        dept, cat, etypes, patterns = self.rng.choices(EDITORIAL_KINDS, (28, 60, 7, 5))[0]
        region = self.rng.choice(REGIONS)
        name = self.rng.choice(patterns).format(d=DISTRICTS.get(region, "鹤岗市"), z=self._zihao(i))
        etype = etypes[0] if self.rng.random() < 0.6 else self.rng.choice(etypes)
        return self.entity(dept, cat, name, etype, region=region)

    def justice_entity(self, i: int) -> Entity:
        dept, cat, etype, pattern = self.rng.choices(JUSTICE_KINDS, (45, 30, 10, 15))[0]
        region = self.rng.choice(REGIONS)
        name = pattern.format(d=DISTRICTS.get(region, "鹤岗市"), z=self._zihao(i))
        return self.entity(dept, cat, name, etype, region=region)


def _parse_date(text: str) -> dt.date:
    return dt.date(*map(int, re.findall(r"\d+", text)[:3]))


# --------------------------------------------------------------------------- damage

def _substitute(code: str, rng: random.Random, positions: range) -> str:
    i = rng.choice(positions)
    new = rng.choice([ch for ch in ALPHABET if ch != code[i]])
    return code[:i] + new + code[i + 1:]


def _formatted(code: str, rng: random.Random) -> str:
    """A code as a clerk's spreadsheet may hold it: spaces, lower case, full width, hyphens, NBSP, zero width."""
    style = rng.choice(["space", "lower", "fullwidth", "hyphen", "nbsp", "zero_width", "tab", "mixed"])
    if style == "space":
        return f"{code[:6]} {code[6:12]} {code[12:]}"
    if style == "lower" and any(c.isalpha() for c in code):
        return code.lower()
    if style == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in code)
    if style == "nbsp":
        return code[:9] + "\u00a0" + code[9:]
    if style == "zero_width":
        return code[:4] + "\u200b" + code[4:]
    if style == "tab":
        return code[:8] + "\t" + code[8:]
    if style == "mixed":
        return "".join(chr(ord(c) + 0xFEE0) if i < 8 else c for i, c in enumerate(code)).lower() + "\u3000"
    return f"{code[:8]}-{code[8:17]}-{code[17]}"


def _personal_id(rng: random.Random, region: str) -> str:
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randint(0, 15000))
    first17 = f"{region}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    from validators.tables import ID_CHECK_CHARS, ID_WEIGHTS
    return first17 + ID_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11]


def _plant_record_level(record: Record, truth: Truth, rng: random.Random, has_evidence: bool) -> None:
    """Damage one record's code the ways registries do; record what must be found."""
    good = record.entity.code
    kind = rng.choice(["missing", "legacy", "bad_length", "charset", "check_char", "typo", "transpose",
                       "department", "category", "region", "formatting", "excel", "personal_id",
                       "formatted_broken", "zeroed_text"])
    if good.isdigit() and rng.random() < 0.15:
        kind = "zeroed_text"  # only all-digit codes can look zeroed: give them a fair share
    if kind == "personal_id":
        if record.entity.cat != "2":  # operators of individual businesses type their ID number
            return _plant_record_level(record, truth, rng, has_evidence)
        record.code = _personal_id(rng, record.entity.region if record.entity.region in DISTRICTS else "230402")
        truth.add(record, "personal_id", good, has_evidence)
    elif kind == "missing":
        record.code = rng.choice(["", "无", "/", "-", "000000000000000000"])
        truth.add(record, "missing", good, has_evidence)
    elif kind == "legacy":
        if record.source == "market":
            record.code = "230400" + f"{rng.randint(0, 999_999_999):09d}"
        else:
            record.code = f"{good[8:16]}-{good[16]}"
        truth.add(record, "legacy_number", good, has_evidence)
    elif kind == "bad_length":
        record.code = good[:-1] if rng.random() < 0.5 else good + rng.choice("0123456789")
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "charset":
        swaps = [(i, {"0": "O", "1": "I", "2": "Z", "5": "S"}[ch]) for i, ch in enumerate(good) if ch in "0125"]
        if not swaps:
            return _plant_record_level(record, truth, rng, has_evidence)
        i, ch = rng.choice(swaps)
        record.code = good[:i] + ch + good[i + 1:]
        truth.add_record_kinds(record, good, True)
    elif kind == "check_char":
        record.code = good[:17] + rng.choice([c for c in ALPHABET if c != good[17]])
        truth.add_record_kinds(record, good, True)
    elif kind == "typo":
        record.code = _substitute(good, rng, range(8, 16))
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "transpose":
        i = rng.randrange(8, 16)
        if good[i] == good[i + 1]:
            return _plant_record_level(record, truth, rng, has_evidence)
        record.code = good[:i] + good[i + 1] + good[i] + good[i + 2:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "department":
        record.code = rng.choice("BCDEFG") + good[1:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "category":
        dept = good[0]
        wrong = [c for c in "45678" if c not in DEPARTMENTS[dept][1]]
        record.code = good[0] + rng.choice(wrong) + good[2:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "region":
        record.code = good[:2] + rng.choice(["239900", "990000", "230499"]) + good[8:]
        truth.add_record_kinds(record, good, has_evidence)
    elif kind == "formatting":
        # the clean code is the fix, and a sure one (the normalization is exact)
        record.code = _formatted(good, rng)
        truth.add(record, "formatting", good, True)
    elif kind == "formatted_broken":
        # spaced or lower-case AND mistyped: the rules' findings carry the fix, formatting none
        broken = good[:17] + rng.choice([c for c in ALPHABET if c != good[17]])
        record.code = _formatted(broken, rng)
        truth.add_record_kinds(record, good, True)
    elif kind == "zeroed_text":
        # typed as text with a wrong region and ending in 000: not Excel damage in an XLSX text cell,
        # but it may be in a CSV (Excel writes numbers there as it shows them)
        if not good.isdigit():
            return _plant_record_level(record, truth, rng, has_evidence)
        record.code = good[:2] + rng.choice(["230431", "230499", "239901"]) + good[8:15] + "000"
        text_cell = record.source == "market" and MARKET_AS_XLSX.get()
        truth.add_record_kinds(record, good, has_evidence and text_cell, text=text_cell)
    elif kind == "excel":
        if record.source == "market" and good.isdigit() and MARKET_AS_XLSX.get():
            record.numeric = True  # the XLSX writer stores it as a number
            truth.add(record, "excel_mangled", good, False)
        else:
            zeroed = good[:15] + "000"
            if not good.isdigit():
                record.code = ""
            elif rng.random() < 0.5 or check(zeroed, suggest=False).valid:
                record.code = f"{good[0]}.{good[1:6]}E+17"
            else:
                record.code = zeroed
            truth.add(record, "excel_mangled" if record.code else "missing", good, False)


# --------------------------------------------------------------------------- writers

class _CsvSink:
    def __init__(self, path: Path, header: list[str], encoding: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w", encoding=encoding, newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(header)

    def write(self, rows):
        self.writer.writerows(rows)

    def close(self):
        self.handle.close()


class _XlsxSink:
    def __init__(self, path: Path, header: list[str]):
        import xlsxwriter

        path.parent.mkdir(parents=True, exist_ok=True)
        self.book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
        self.sheet = self.book.add_worksheet("主体名录")
        self.sheet.write_row(0, 0, header)
        self.next_row = 1

    def write(self, rows, numeric_flags):
        for row, numeric in zip(rows, numeric_flags):
            if not any(row):
                self.next_row += 1  # a blank row, as clerks leave them
                continue
            for col, value in enumerate(row):
                if col == 1 and numeric:
                    self.sheet.write_number(self.next_row, col, int(value))
                else:
                    self.sheet.write_string(self.next_row, col, "" if value is None else str(value))
            self.next_row += 1

    def close(self):
        self.book.close()


# --------------------------------------------------------------------------- orchestration

def generate(out: Path, records: int = 3000, seed: int = 1, xlsx_max: int = 200_000) -> Path:
    """Write a data directory of `records` records with planted problems; return the truth folder."""
    out = Path(out)
    gen = Generator(seed)
    rng = gen.rng
    truth = Truth()
    n_market, n_editorial = int(records * 0.85), int(records * 0.10)
    n_justice = records - n_market - n_editorial
    market_as_xlsx = n_market <= xlsx_max
    MARKET_AS_XLSX.value = market_as_xlsx
    (out / "returns").mkdir(parents=True, exist_ok=True)
    sinks = {
        "editorial": _CsvSink(out / "extracts/editorial" / FILES["editorial"], HEADERS["editorial"], "gb18030"),
        "justice": _CsvSink(out / "extracts/justice" / FILES["justice"], HEADERS["justice"], "utf-8-sig"),
        "market": (_XlsxSink(out / "extracts/market" / FILES["market"], HEADERS["market"]) if market_as_xlsx
                   else _CsvSink(out / "extracts/market" / "市场主体名录.csv", HEADERS["market"], "utf-8-sig")),
    }
    counters = {"editorial": 0, "market": 0, "justice": 0}
    prefix = {"editorial": "BB", "market": "SC", "justice": "SF"}
    total_chunks = max(1, -(-records // CHUNK))
    targets = {"editorial": n_editorial, "market": n_market, "justice": n_justice}

    for chunk in range(total_chunks):
        batch: dict[str, list[Record]] = {k: [] for k in counters}

        def new_record(source: str, entity: Entity, code: str | None = None) -> Record:
            counters[source] += 1
            rid = f"{prefix[source]}{counters[source]:08d}"
            record = Record(source, rid, entity.code if code is None else code, entity)
            batch[source].append(record)
            return record

        for source, make in (("editorial", gen.editorial_entity), ("market", gen.market_entity),
                             ("justice", gen.justice_entity)):
            want = targets[source] * (chunk + 1) // total_chunks - targets[source] * chunk // total_chunks
            for _ in range(want):
                new_record(source, make(gen.serial))
        _plant_cross_record(batch, truth, gen, new_record)
        _plant_near_misses(batch, truth, gen, new_record)
        for source, items in batch.items():
            _plant_damage(items, truth, rng, source)
            rows = [r.row() for r in items]
            if source == "editorial":
                rows = [row + [rng.choice(["", "", "已核实", "=1+1"])] for row in rows]
            if chunk == 0 and rows:  # a few blank rows, as exported sheets have
                rows.insert(min(5, len(rows)), [""] * len(rows[0]))
            if isinstance(sinks[source], _XlsxSink):
                flags = [r.numeric for r in items]
                if chunk == 0 and items:
                    flags.insert(min(5, len(items)), False)
                sinks[source].write(rows, flags)
            else:
                sinks[source].write(rows)
    for sink in sinks.values():
        sink.close()

    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(truth_dir / "findings.csv", ["source", "record_id", "kind", "expected_code", "derivable"],
               truth.findings)
    _write_csv(truth_dir / "near_miss.csv", ["source_a", "record_a", "source_b", "record_b", "why"], truth.near_miss)
    return truth_dir


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _still_valid_with_twin(record: Record, truth: Truth) -> None:
    """A damaged code that still passes every error rule (a region typo the check
    character happens to accept) beside a twin holding the right code: one entity, two
    valid codes. The twin's clean code is the one to trust."""
    twin = getattr(record, "_twin", None)
    if twin is None:
        return
    report = check(record.code, suggest=False)
    if report.valid and report.code != twin.code and len(report.code) == 18:
        truth.add(record, "multiple_codes", twin.code, True)


def _plant_damage(items: list[Record], truth: Truth, rng: random.Random, source: str) -> None:
    """Record-level damage on about 6 % of the untouched records of a source."""
    for record in items:
        if record.code != record.entity.code or getattr(record, "_planted", False) or record.numeric:
            continue
        if rng.random() < 0.06:
            evidence = getattr(record, "_twin", None) is not None
            _plant_record_level(record, truth, rng, evidence)
            _still_valid_with_twin(record, truth)
            record._planted = True
            if evidence:  # keep the twin intact: it is the evidence
                record._twin._planted = True


def _mark(*records: Record) -> None:
    for r in records:
        r._planted = True


class _Pool:
    """Untouched records of one kind, drawn without replacement (keeps planting linear)."""

    def __init__(self, rng: random.Random, records):
        self.items = [r for r in records if not getattr(r, "_planted", False)]
        rng.shuffle(self.items)

    def take(self) -> Record | None:
        while self.items:
            r = self.items.pop()
            if not getattr(r, "_planted", False):
                return r
        return None


def _plant_cross_record(batch, truth: Truth, gen: Generator, new_record) -> None:
    """Cross-record problems, about 1 % of records each kind."""
    rng = gen.rng
    market, editorial, justice = batch["market"], batch["editorial"], batch["justice"]
    n = max(1, (len(market) + len(editorial) + len(justice)) // 100)

    if counters_first_chunk(batch):
        # A code confirmed legitimate although it fails the check (config allowlist): info only.
        pilot = new_record("market", gen.entity("9", "1", "厦门鹭江贸易有限公司", "有限责任公司", region="350100"))
        pilot.code = ALLOWLISTED_PILOT_CODE
        _mark(pilot)
        truth.add(pilot, "allowlisted")
        truth.add(pilot, "region_outside")

    # Notary offices and forensic institutes are 事业单位: editorial registers them
    # (12… code) and justice lists them under the same code (SPEC §8 cross-listing).
    for r in [r for r in justice if r.entity.dept == "1"]:
        twin = new_record("editorial", r.entity)
        r._twin, twin._twin = twin, r

    companies = _Pool(rng, [r for r in market if r.entity.cat == "1"])
    shops = _Pool(rng, [r for r in market if r.entity.cat == "2"])
    anyone = _Pool(rng, market)
    units = _Pool(rng, [r for r in editorial if getattr(r, "_twin", None) is None])
    typed_units = [r for r in editorial if getattr(r, "_twin", None) is None and r.entity.cat in "123"]
    usual_words = {etypes[0] for _, _, etypes, _ in EDITORIAL_KINDS}
    # every other one has a type word other than the usual 机关 / 事业单位 (the words a check may not know)
    typed_pools = (_Pool(rng, [r for r in typed_units if r.entity.entity_type not in usual_words or r.entity.cat == "3"]),
                   _Pool(rng, typed_units))
    firms = _Pool(rng, [r for r in justice if r.entity.dept == "3" and r.entity.cat == "1"])
    for _ in range(n):
        a, b = companies.take(), companies.take()
        if a is None or b is None:
            break
        # duplicate_code inside market: company B carries company A's code → both must check.
        b.code = a.code
        _mark(a, b)
        truth.add(a, "duplicate_code")
        truth.add(b, "duplicate_code")
        # duplicate_record: the same company entered twice under the same code.
        c = anyone.take()
        if c is not None:
            d = new_record("market", c.entity)
            d.name = c.entity.name.replace("(", "（").replace(")", "）") + ("" if rng.random() < 0.5 else " ")
            _mark(c, d)
            truth.add(d, "duplicate_record")
        # duplicate_record of a business that moved: a stale copy at its old address (same code,
        # name, operator and date, the date perhaps written another way).
        roll = rng.random()
        if roll < 0.2:
            operator = gen._person()  # a shop named after its operator
            m = new_record("market", gen.entity("9", "2", operator, "个体工商户", legal_rep=operator))
        else:
            m = shops.take() if roll < 0.8 else companies.take()
        if m is not None:
            moved = new_record("market", replace(m.entity, address=gen.moved_address(m.entity),
                                                 established=gen.respell_date(m.entity.established)))
            _mark(m, moved)
            truth.add(moved, "duplicate_record")
        # multiple_codes inside market: re-registered under a new code, old record kept.
        e = companies.take()
        if e is not None:
            f = new_record("market", replace(e.entity, body=gen._body(False)))
            _mark(e, f)
            truth.add(e, "multiple_codes")
            truth.add(f, "multiple_codes")
        # region_outside: registered by another city's authority (legitimate, a warning).
        g = anyone.take()
        if g is not None:
            g.entity = replace(g.entity, region=rng.choice(OUTSIDE_REGIONS))
            g.code = g.entity.code
            _mark(g)
            truth.add(g, "region_outside")

    for _ in range(max(1, n // 3)):
        unit, company = units.take(), companies.take()
        if unit is None or company is None:
            break
        # duplicate_code across registries: a company carries a public institution's code.
        company.code = unit.code
        _mark(unit, company)
        truth.add(company, "duplicate_code")
        truth.add(company, "department_mismatch")

    for i in range(max(1, n // 3)):
        a, b = firms.take(), firms.take()
        if a is not None:
            # department_mismatch: a law firm coded as a market enterprise (9…).
            a.code = replace(a.entity, dept="9", cat="1").code
            _mark(a)
            truth.add(a, "department_mismatch", a.entity.code, True)
        if b is not None:
            # category_mismatch: a law firm coded as a notary (32).
            b.code = replace(b.entity, cat="2").code
            _mark(b)
            truth.add(b, "category_mismatch", b.entity.code, True)
        u = typed_pools[i % 2].take() or typed_pools[1].take()
        if u is not None:
            # category_mismatch in editorial: an organ, institution or people's organization under
            # another category of department 1, whatever type word its registry uses.
            u.code = replace(u.entity, cat=rng.choice([c for c in "123" if c != u.entity.cat])).code
            _mark(u)
            truth.add(u, "category_mismatch", u.entity.code, True)
        s = shops.take()
        if s is not None:
            # category_mismatch in market: an individual business coded as an enterprise (91).
            s.code = replace(s.entity, cat="1").code
            _mark(s)
            truth.add(s, "category_mismatch", s.entity.code, True)

    twins = [r for r in justice if getattr(r, "_twin", None) is not None
             and not getattr(r, "_planted", False) and not getattr(r._twin, "_planted", False)]
    rng.shuffle(twins)
    k = max(1, n // 3)
    for r in twins[:k]:
        # name_mismatch: justice still lists a forensic institute under its old name.
        r.name = r.entity.name.replace("司法鉴定所", "司法鉴定中心").replace("公证处", "公证中心")
        _mark(r, r._twin)
        truth.add(r, "name_mismatch")
    for r in twins[k: 2 * k]:
        # multiple_codes across registries: justice issued its own code for the same institute.
        other = replace(r.entity, dept="3", cat="4" if "鉴定" in r.entity.name else "2", body=gen._body(False))
        r.code = other.code
        _mark(r, r._twin)
        truth.add(r, "multiple_codes")
        truth.add(r._twin, "multiple_codes")


ALLOWLISTED_PILOT_CODE = "91350100M0001TGQXM"


def counters_first_chunk(batch) -> bool:
    return any(r.record_id.endswith("00000001") for items in batch.values() for r in items)


def _plant_near_misses(batch, truth: Truth, gen: Generator, new_record) -> None:
    """Different entities with look-alike names: none of them may be linked."""
    rng = gen.rng
    market, editorial = batch["market"], batch["editorial"]
    k = max(1, len(market) // 400)
    companies = _Pool(rng, [r for r in market if r.entity.cat == "1"])
    for i in range(k):
        head = companies.take()
        if head is None:
            break
        region = rng.choice(list(DISTRICTS))
        branch = gen.entity("9", "1", head.entity.name + DISTRICTS[region][:2] + "分公司", "有限责任公司分公司",
                            region=region, legal_rep=head.entity.legal_rep)
        b = new_record("market", branch)
        _mark(head, b)
        truth.near_miss.append(("market", head.record_id, "market", b.record_id, "总公司与分公司"))

        operator = gen._person()
        shop = f"{operator}{rng.choice(SHOPS)}"
        r1, r2 = rng.sample(list(DISTRICTS), 2)
        s1 = new_record("market", gen.entity("9", "2", DISTRICTS[r1] + shop, "个体工商户", region=r1, legal_rep=operator))
        s2 = new_record("market", gen.entity("9", "2", DISTRICTS[r2] + shop, "个体工商户", region=r2, legal_rep=operator))
        _mark(s1, s2)
        truth.near_miss.append(("market", s1.record_id, "market", s2.record_id, "同一经营者在不同区的两家店"))

        namesake = gen._person()
        # two people, two places: house numbers unique to the plant, never the same door
        first = gen.entity("9", "2", namesake, "个体工商户", legal_rep=namesake)
        p1 = new_record("market", replace(first, address=first.address.replace("号", f"-{gen.serial}号")))
        second = gen.entity("9", "2", namesake, "个体工商户", legal_rep=namesake)
        p2 = new_record("market", replace(second, address=second.address.replace("号", f"-{gen.serial}号")))
        _mark(p1, p2)
        truth.near_miss.append(("market", p1.record_id, "market", p2.record_id, "以经营者姓名命名的同名个体户"))

        # One code on two businesses a careless rule would merge: a shop name two operators use
        # in one district, and two namesakes' person-named shops, each pair at different doors
        # and opened on different days. Both holders must check their code (重码).
        region = rng.choice(list(DISTRICTS))
        shop_name = f"{DISTRICTS[region]}{gen._zihao(gen.serial)}{rng.choice(SHOPS)}"
        namesake = gen._person()
        for why, name_of in (("不同经营者的同名店铺共用一个代码", lambda: shop_name),
                             ("同名经营者的个体户共用一个代码", lambda: namesake)):
            first = gen.entity("9", "2", name_of(), "个体工商户", region=region,
                               legal_rep=namesake if name_of() == namesake else None)
            second = gen.entity("9", "2", name_of(), "个体工商户", region=region,
                                legal_rep=namesake if name_of() == namesake else None)
            second = replace(second, established=gen.other_date(first.established))
            c1 = new_record("market", replace(first, address=first.address.replace("号", f"-{gen.serial}号")))
            c2 = new_record("market", replace(second, address=second.address.replace("号", f"-{gen.serial + 1}号")),
                            code=first.code)
            _mark(c1, c2)
            truth.add(c1, "duplicate_code")
            truth.add(c2, "duplicate_code")
            truth.near_miss.append(("market", c1.record_id, "market", c2.record_id, why))

    for i in range(max(1, len(editorial) // 100)):
        zi = gen._zihao(gen.serial)
        n1, n2 = rng.choice([(1, 11), (2, 12), (3, 13), (1, 10)])
        num = "一二三四五六七八九十"
        def cn(v):  # noqa: E306
            return num[v - 1] if v <= 10 else "十" + num[v - 11]
        a = new_record("editorial", gen.entity("1", "2", f"鹤岗市{zi}第{cn(n1)}中学", "事业单位"))
        b = new_record("editorial", gen.entity("1", "2", f"鹤岗市{zi}第{cn(n2)}中学", "事业单位"))
        truth.near_miss.append(("editorial", a.record_id, "editorial", b.record_id, "第一中学与第十一中学"))
        d1, d2 = rng.sample([c for c in DISTRICTS if c.startswith("2304") and DISTRICTS[c].endswith("区")], 2)
        c1 = new_record("editorial", gen.entity("1", "1", f"鹤岗市{DISTRICTS[d1]}{zi}人民法庭", "机关", region=d1))
        c2 = new_record("editorial", gen.entity("1", "1", f"鹤岗市{DISTRICTS[d2]}{zi}人民法庭", "机关", region=d2))
        _mark(a, b, c1, c2)
        truth.near_miss.append(("editorial", c1.record_id, "editorial", c2.record_id, "不同区的同类机关"))

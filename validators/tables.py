"""Reference tables of GB 32100-2015 and the finding kinds: one place for each rule.

Everything that decides or describes a code reads these tables; nothing else
spells out an alphabet, a weight, a category or a Chinese message.
"""

from __future__ import annotations

from dataclasses import dataclass

#: GB 32100-2015 §4: the 31 characters of the code (no I, O, Z, S, V).
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
VALUE = {ch: i for i, ch in enumerate(ALPHABET)}

#: Weights of positions 1..17 for the position-18 check: 3^(i-1) mod 31.
CHECK_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

#: GB 11714-1997: weights of the 8 body characters of the organization code.
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

#: GB 11643-1999: weights and check characters of the resident identity number.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"

#: Department code (position 1) → (Chinese name, {category code: Chinese name}).
DEPARTMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": ("司法行政", {"1": "律师执业机构", "2": "公证处", "3": "基层法律服务所", "4": "司法鉴定机构", "5": "仲裁委员会", "9": "其他"}),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": ("旅游", {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"}),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商（市场监管）", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": "其他"}),
}

#: Confusable characters tried for `bad_charset` (docs/decisions.md#confusables): typed → intended.
CONFUSABLES: dict[str, tuple[str, ...]] = {
    "O": ("0",),
    "I": ("1",),
    "Z": ("2",),
    "S": ("5",),
    "V": ("U", "Y"),
}

#: Values of the code field that mean "no code" (docs/decisions.md#placeholders), compared after clean-up.
PLACEHOLDERS = frozenset({"无", "空", "/", "\\", "暂无", "NULL", "NONE", "NAN", "N/A", "NA", "#N/A", "?", "？"})
#: Regex of placeholders made of one repeated character (`0000`, `---`, `——`, `///`).
PLACEHOLDER_REPEATED_RE = r"^(0+|-+|—+|/+|\*+|\.+|_+)$"

#: Characters normalization removes anywhere in a code: Unicode spaces, NBSP,
#: zero-width characters, hyphens/dashes and dots between groups.
STRIP_CHARS = (
    " \t\r\n\f\v\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\u180e\u200b\u200c\u200d\u2060\ufeff"
    "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d._\u00b7\u30fb"
)
#: ASCII whitespace trimmed at the ends of a cell without a finding (docs/decisions.md#trimming).
TRIM_CHARS = " \t\r\n"

#: Spreadsheet damage, matched on the cell after NFKC and space removal.
EXCEL_SCIENTIFIC_RE = r"^[0-9](\.[0-9]+)?[eE][+]?[0-9]{1,3}$"
EXCEL_FLOAT_RE = r"^[0-9]+\.0+$"
#: An 18-digit number keeps 15 significant digits in Excel: the rest become `000`.
EXCEL_ZEROED_SUFFIX = "000"
EXCEL_SIGNIFICANT_DIGITS = 15

#: Region part special values that GB/T 2260 lists do not carry (docs/standard.md#region-codes).
NATIONAL_REGION = "100000"
#: USCCs were issued from 2015 on; a region abolished before this year could not issue one.
USCC_FIRST_YEAR = 2015


@dataclass(frozen=True)
class Kind:
    """A finding kind: its stable key, severity, Chinese label and clerk advice."""

    key: str
    severity: str
    label: str
    advice: str


#: Every finding kind of docs/findings.md, in the order reports list them.
KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind("missing", "error", "代码缺失", "请补录该主体的统一社会信用代码。"),
        Kind("excel_mangled", "error", "代码被表格软件损坏",
             "该代码被 Excel 当作数字保存，末位数字已丢失。请在登记系统中查出原代码，并以“文本”格式重新导出。"),
        Kind("personal_id", "error", "误填居民身份证号",
             "代码栏填写的是居民身份证号码（个人信息，已遮蔽），请改填该主体的统一社会信用代码。"),
        Kind("legacy_number", "error", "旧版代码未换发",
             "代码栏填写的是换发统一社会信用代码前的旧号码，请改填该主体的统一社会信用代码。"),
        Kind("bad_length", "error", "代码长度错误", "统一社会信用代码应为 18 位，请核对原始证照后更正。"),
        Kind("bad_charset", "error", "含非法字符",
             "统一社会信用代码只使用数字和 A–Y 中除 I、O、Z、S、V 以外的大写字母，请核对后更正。"),
        Kind("bad_department", "error", "登记管理部门码错误", "第 1 位应为登记管理部门代码（1–9、A、N、Y），请核对原始证照。"),
        Kind("bad_category", "error", "机构类别码错误", "第 2 位机构类别与第 1 位登记管理部门不匹配，请核对原始证照。"),
        Kind("bad_region", "error", "行政区划码错误", "第 3–8 位应为登记管理机关所在地的行政区划代码，请核对原始证照。"),
        Kind("bad_org_check", "error", "主体标识码校验错误",
             "第 9–17 位（组织机构代码）的校验位不符合 GB 11714，说明其中有字符录错，请核对原始证照。"),
        Kind("bad_check_char", "error", "校验码错误", "第 18 位校验码与前 17 位不符，说明代码中有字符录错，请核对原始证照。"),
        Kind("formatting", "info", "格式不规范",
             "代码本身正确，但含有空格、全角字符、小写字母、连字符或不可见字符，请在登记系统中清理格式。"),
        Kind("allowlisted", "info", "已确认的特殊代码", "该代码经确认合法有效，仅作提示，无需处理。"),
        Kind("department_mismatch", "error", "登记管理部门与登记机关不符",
             "代码第 1 位表示的登记管理部门不是本单位，请核对该主体的代码是否填错。"),
        Kind("category_mismatch", "error", "机构类别与主体类型不符",
             "代码第 2 位表示的机构类别与该主体的类型或名称不符，请核对原始证照。"),
        Kind("region_outside", "warning", "登记机关不在本市",
             "代码第 3–8 位表示的登记机关不在本市辖区。如该主体确由外地登记可不处理，否则请核对。"),
        Kind("duplicate_code", "error", "重码", "同一代码被两个或以上不同主体使用，请核实本单位记录的代码。"),
        Kind("duplicate_record", "error", "重复记录", "同一主体以同一代码在本单位登记了两条或以上记录，请合并或删除重复记录。"),
        Kind("multiple_codes", "error", "一主体多码", "同一主体登记了两个或以上不同代码，请核实正确代码并更正。"),
        Kind("name_mismatch", "warning", "名称不一致", "同一代码在不同部门登记的名称不一致，请核实现用名称并更正。"),
    )
}

#: Kinds that mean "this is not a USCC at all": no positional rule is run after them.
TERMINAL_KINDS = ("missing", "excel_mangled", "personal_id", "legacy_number")

#: Confidence levels of a suggestion and how clerks see them.
CONFIDENCE_LABELS = {"high": "确定", "medium": "疑似", "low": "待核"}
SEVERITY_LABELS = {"error": "错误", "warning": "警告", "info": "提示"}

#: Finding lifecycle (docs/correction-loop.md#statuses) and how clerks see it.
STATUS_LABELS = {
    "open": "待处理",
    "responded": "已反馈",
    "fixed": "已更正",
    "rejected-response": "反馈未通过",
    "waived": "确认无误",
    "reopened": "重新出现",
    "superseded": "已转至新记录",
    "withdrawn": "已撤销跟踪",
}

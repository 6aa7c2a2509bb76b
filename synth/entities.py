"""Who is in the synthetic registries: Hegang's entities, their names, places, people and dates.

`Generator` draws every identity from one seeded `random.Random`; the order of the draws is
part of the output (a given seed writes the same extracts), so a new draw goes at the end.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, replace

from validators.tables import ALPHABET
from validators.uscc import calc_check_char, calc_org_check_char

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



__all__ = ["Entity", "Generator", "DISTRICTS", "REGIONS", "OUTSIDE_REGIONS", "SHOPS", "EDITORIAL_KINDS",
           "JUSTICE_KINDS"]

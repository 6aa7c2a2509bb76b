"""Cross-record problems and near misses, planted chunk by chunk.

Duplicate codes (within a registry and across registries), duplicate records (a company
entered twice, a business that moved), one entity under several codes, codes of the wrong
department or category for the record's type, names that drifted between registries; and
different entities with look-alike names that no rule may link. Each is recorded in the
truth as it is planted.
"""

from __future__ import annotations

import random
from dataclasses import replace

from synth.entities import DISTRICTS, EDITORIAL_KINDS, OUTSIDE_REGIONS, SHOPS, Generator
from synth.records import Record, Truth, mark

#: The entity the allowlisted code (`[[allowlist]]` in `config/steward.toml`) is planted on.
PILOT_NAME = "厦门鹭江贸易有限公司"


class Pool:
    """Untouched records of one kind, drawn without replacement (keeps planting linear)."""

    def __init__(self, rng: random.Random, records):
        self.items = [r for r in records if not r.planted]
        rng.shuffle(self.items)

    def take(self) -> Record | None:
        while self.items:
            r = self.items.pop()
            if not r.planted:
                return r
        return None


def plant_cross_record(batch, truth: Truth, gen: Generator, new_record, allowlisted: str | None) -> None:
    """Cross-record problems, about 1 % of records each kind; in the first chunk, the `allowlisted` code."""
    rng = gen.rng
    market, editorial, justice = batch["market"], batch["editorial"], batch["justice"]
    n = max(1, (len(market) + len(editorial) + len(justice)) // 100)

    if allowlisted and counters_first_chunk(batch):
        # A code confirmed legitimate although it fails the check (config allowlist): info only.
        pilot = new_record("market", gen.entity(allowlisted[0], allowlisted[1], PILOT_NAME, "有限责任公司",
                                                region=allowlisted[2:8]))
        pilot.code = allowlisted
        mark(pilot)
        truth.add(pilot, "allowlisted")
        truth.add(pilot, "region_outside")

    # Notary offices and forensic institutes are 事业单位: editorial registers them
    # (12… code) and justice lists them under the same code (docs/decisions.md#cross-listing cross-listing).
    for r in [r for r in justice if r.entity.dept == "1"]:
        twin = new_record("editorial", r.entity)
        r.twin, twin.twin = twin, r

    companies = Pool(rng, [r for r in market if r.entity.cat == "1"])
    shops = Pool(rng, [r for r in market if r.entity.cat == "2"])
    anyone = Pool(rng, market)
    units = Pool(rng, [r for r in editorial if r.twin is None])
    typed_units = [r for r in editorial if r.twin is None and r.entity.cat in "123"]
    usual_words = {etypes[0] for _, _, etypes, _ in EDITORIAL_KINDS}
    # every other one has a type word other than the usual 机关 / 事业单位 (the words a check may not know)
    typed_pools = (Pool(rng, [r for r in typed_units if r.entity.entity_type not in usual_words or r.entity.cat == "3"]),
                   Pool(rng, typed_units))
    firms = Pool(rng, [r for r in justice if r.entity.dept == "3" and r.entity.cat == "1"])
    for _ in range(n):
        a, b = companies.take(), companies.take()
        if a is None or b is None:
            break
        # duplicate_code inside market: company B carries company A's code → both must check.
        b.code = a.code
        mark(a, b)
        truth.add(a, "duplicate_code")
        truth.add(b, "duplicate_code")
        # duplicate_record: the same company entered twice under the same code.
        c = anyone.take()
        if c is not None:
            d = new_record("market", c.entity)
            d.name = c.entity.name.replace("(", "（").replace(")", "）") + ("" if rng.random() < 0.5 else " ")
            mark(c, d)
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
            mark(m, moved)
            truth.add(moved, "duplicate_record")
        # multiple_codes inside market: re-registered under a new code, old record kept.
        e = companies.take()
        if e is not None:
            f = new_record("market", replace(e.entity, body=gen._body(False)))
            mark(e, f)
            truth.add(e, "multiple_codes")
            truth.add(f, "multiple_codes")
        # region_outside: registered by another city's authority (legitimate, a warning).
        g = anyone.take()
        if g is not None:
            g.entity = replace(g.entity, region=rng.choice(OUTSIDE_REGIONS))
            g.code = g.entity.code
            mark(g)
            truth.add(g, "region_outside")

    for _ in range(max(1, n // 3)):
        unit, company = units.take(), companies.take()
        if unit is None or company is None:
            break
        # duplicate_code across registries: a company carries a public institution's code.
        company.code = unit.code
        mark(unit, company)
        truth.add(company, "duplicate_code")
        truth.add(company, "department_mismatch")

    for i in range(max(1, n // 3)):
        a, b = firms.take(), firms.take()
        if a is not None:
            # department_mismatch: a law firm coded as a market enterprise (9…).
            a.code = replace(a.entity, dept="9", cat="1").code
            mark(a)
            truth.add(a, "department_mismatch", a.entity.code, True)
        if b is not None:
            # category_mismatch: a law firm coded as a notary (32).
            b.code = replace(b.entity, cat="2").code
            mark(b)
            truth.add(b, "category_mismatch", b.entity.code, True)
        u = typed_pools[i % 2].take() or typed_pools[1].take()
        if u is not None:
            # category_mismatch in editorial: an organ, institution or people's organization under
            # another category of department 1, whatever type word its registry uses.
            u.code = replace(u.entity, cat=rng.choice([c for c in "123" if c != u.entity.cat])).code
            mark(u)
            truth.add(u, "category_mismatch", u.entity.code, True)
        s = shops.take()
        if s is not None:
            # category_mismatch in market: an individual business coded as an enterprise (91).
            s.code = replace(s.entity, cat="1").code
            mark(s)
            truth.add(s, "category_mismatch", s.entity.code, True)

    twins = [r for r in justice if r.twin is not None and not r.planted and not r.twin.planted]
    rng.shuffle(twins)
    k = max(1, n // 3)
    for r in twins[:k]:
        # name_mismatch: justice still lists a forensic institute under its old name.
        r.name = r.entity.name.replace("司法鉴定所", "司法鉴定中心").replace("公证处", "公证中心")
        mark(r, r.twin)
        truth.add(r, "name_mismatch")
    for r in twins[k: 2 * k]:
        # multiple_codes across registries: justice issued its own code for the same institute.
        other = replace(r.entity, dept="3", cat="4" if "鉴定" in r.entity.name else "2", body=gen._body(False))
        r.code = other.code
        mark(r, r.twin)
        truth.add(r, "multiple_codes")
        truth.add(r.twin, "multiple_codes")



def counters_first_chunk(batch) -> bool:
    """The batch holds the first record of a source (the pilot code is planted once)."""
    return any(r.record_id.endswith("00000001") for items in batch.values() for r in items)


def plant_near_misses(batch, truth: Truth, gen: Generator, new_record) -> None:
    """Different entities with look-alike names: none of them may be linked."""
    rng = gen.rng
    market, editorial = batch["market"], batch["editorial"]
    k = max(1, len(market) // 400)
    companies = Pool(rng, [r for r in market if r.entity.cat == "1"])
    for i in range(k):
        head = companies.take()
        if head is None:
            break
        region = rng.choice(list(DISTRICTS))
        branch = gen.entity("9", "1", head.entity.name + DISTRICTS[region][:2] + "分公司", "有限责任公司分公司",
                            region=region, legal_rep=head.entity.legal_rep)
        b = new_record("market", branch)
        mark(head, b)
        truth.near_miss.append(("market", head.record_id, "market", b.record_id, "总公司与分公司"))

        operator = gen._person()
        shop = f"{operator}{rng.choice(SHOPS)}"
        r1, r2 = rng.sample(list(DISTRICTS), 2)
        s1 = new_record("market", gen.entity("9", "2", DISTRICTS[r1] + shop, "个体工商户", region=r1, legal_rep=operator))
        s2 = new_record("market", gen.entity("9", "2", DISTRICTS[r2] + shop, "个体工商户", region=r2, legal_rep=operator))
        mark(s1, s2)
        truth.near_miss.append(("market", s1.record_id, "market", s2.record_id, "同一经营者在不同区的两家店"))

        namesake = gen._person()
        # two people, two places: house numbers unique to the plant, never the same door
        first = gen.entity("9", "2", namesake, "个体工商户", legal_rep=namesake)
        p1 = new_record("market", replace(first, address=first.address.replace("号", f"-{gen.serial}号")))
        second = gen.entity("9", "2", namesake, "个体工商户", legal_rep=namesake)
        p2 = new_record("market", replace(second, address=second.address.replace("号", f"-{gen.serial}号")))
        mark(p1, p2)
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
            mark(c1, c2)
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
        mark(a, b, c1, c2)
        truth.near_miss.append(("editorial", c1.record_id, "editorial", c2.record_id, "不同区的同类机关"))


__all__ = ["plant_cross_record", "plant_near_misses"]

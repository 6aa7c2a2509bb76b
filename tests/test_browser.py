"""The correction list as a clerk uses it, in a real browser from file:// with no network."""

import shutil

import polars as pl
import pytest

from flows.stages import run_all

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium 未安装：运行 `make browser-deps`（.ci/run 会安装）"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests.conftest import ROOT

    data = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(ROOT / "sample_data", data)
    # a clerk-typed name that must stay text
    market = data / "extracts" / "justice" / "司法行政机构名录.csv"
    text = market.read_text("utf-8-sig").splitlines()
    text.append("SF99999999,91230400MA1C4B0P6X,<script>alert(1)</script>律师事务所,律师事务所,王五,2020-01-01,存续,鹤岗市")
    market.write_text("\n".join(text) + "\n", encoding="utf-8-sig")
    run_all(data, run_date="2026-11-27")
    return data / "reports" / "2026-11-27"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests, dialogs = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, requests, dialogs


def visible_rows(page):
    return page.locator("#findings tbody tr:visible")


def test_list_sorts_filters_and_keeps_data_as_text(browser, report, artifacts):
    page, requests, dialogs = open_page(browser, report / "justice.html")
    assert page.locator("h1").inner_text().startswith("市司法局")
    total = page.locator("#findings tbody tr").count()
    assert total == pl.read_csv(report / "findings.csv").filter(pl.col("source") == "justice").height

    assert "<script>alert(1)</script>律师事务所" in page.locator("#findings").inner_text()
    assert dialogs == []

    page.select_option("#f-kind", "bad_check_char")
    shown = visible_rows(page)
    assert 0 < shown.count() < total
    assert all("校验码错误" in t for t in shown.locator("td:nth-child(5)").all_inner_texts())
    page.click("#f-clear")
    page.fill("#f-text", "SF99999999")
    page.wait_for_timeout(300)
    assert visible_rows(page).count() >= 1
    assert all("SF99999999" in t for t in visible_rows(page).locator("td:nth-child(2)").all_inner_texts())
    page.click("#f-clear")

    page.click("th:has-text('记录编号')")
    ids = page.locator("#findings tbody tr td:nth-child(2)").all_inner_texts()
    assert ids == sorted(ids)
    page.click("th:has-text('记录编号')")
    ids = page.locator("#findings tbody tr td:nth-child(2)").all_inner_texts()
    assert ids == sorted(ids, reverse=True)
    page.screenshot(path=str(artifacts / "justice-list.png"))
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    page.close()


def test_overview_renders_chart_and_links_offline(browser, report, artifacts):
    page, requests, _ = open_page(browser, report / "index.html")
    assert page.locator("svg polyline").count() == 1 + 3  # the city's road to zero, and each department's
    assert "目标：清零" in page.locator("svg").first.text_content()
    for key in ("editorial", "market", "justice"):
        assert page.locator(f"a[href='{key}.html']").count() == 1
        assert page.locator(f"a[href='{key}.xlsx']").count() == 1
    page.screenshot(path=str(artifacts / "overview.png"), full_page=True)
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    page.close()


def test_list_prints_on_a4_landscape(browser, report, artifacts):
    page, _, _ = open_page(browser, report / "editorial.html")
    pdf = page.pdf(path=str(artifacts / "editorial.pdf"), prefer_css_page_size=True)
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.close()


def test_a_long_list_shows_200_rows_at_a_time_but_filters_all(browser, tmp_path):
    from checks.findings import FINDING_SCHEMA
    from reports.render import PAGE_SIZE, RunView, render_department

    rows = [{c: None for c in FINDING_SCHEMA} | {
        "finding_id": f"{i:016x}", "source": "market", "record_id": f"SC{i:08d}", "uscc": "91110000600037341X",
        "name": f"宏发{i}商贸有限公司", "kind": "missing" if i % 5 == 0 else "bad_check_char", "severity": "error",
        "message": "校验码不符", "positions": "18", "status": "open", "related_detail": "[]", "row": i + 2}
        for i in range(3 * PAGE_SIZE)]
    frame = pl.DataFrame(rows, schema=FINDING_SCHEMA)
    view = RunView("2026-11-28", "鹤岗市", [], frame, pl.DataFrame(), [], {}, {})
    path = tmp_path / "market.html"
    path.write_bytes(render_department(view, {"key": "market", "name": "市场监管局"}, frame))
    page, _, _ = open_page(browser, path)
    assert visible_rows(page).count() == PAGE_SIZE
    page.click("#f-more")
    assert visible_rows(page).count() == 3 * PAGE_SIZE
    page.select_option("#f-kind", "missing")  # every fifth row: 120 of 600, all within one screen
    assert visible_rows(page).count() == 3 * PAGE_SIZE // 5
    assert "显示 120 / 120 条（共 600 条）" in page.inner_text("#f-count")
    page.close()


def test_a_receipt_opens_offline_and_shows_what_the_clerk_typed_as_text(browser, tmp_path, artifacts):
    """A returned form with a refused and an accepted row, its receipt read in the browser."""
    from tests.conftest import ROOT

    data = tmp_path / "data"
    shutil.copytree(ROOT / "sample_data", data)
    run_all(data, run_date="2026-11-27")
    form = pl.read_csv(data / "reports" / "2026-11-27" / "market.csv", infer_schema=False)
    ids = [i.strip() for i in form["问题编号"].head(2)]
    lines = ["问题编号,记录编号,名称,当前代码,处理结果,更正后代码,处理说明"]
    for i, r in zip(ids, form.head(2).iter_rows(named=True)):
        lines.append(",".join([i, r["记录编号"].strip(), r["名称"], r["当前代码"].strip(), "确认无误",
                               "", "<img src=x onerror=alert(1)>" if i == ids[0] else ""]))
    (data / "returns" / "market").mkdir(parents=True, exist_ok=True)
    (data / "returns" / "market" / "反馈.csv").write_text("\n".join(lines) + "\n", encoding="gb18030")
    run_all(data, run_date="2026-11-28")
    [receipt] = (data / "reports" / "2026-11-28" / "receipts" / "market").glob("*.html")
    page, requests, dialogs = open_page(browser, receipt)
    assert page.locator("h1").inner_text().startswith("市市场监督管理局")
    assert "<img src=x onerror=alert(1)>" in page.locator("body").inner_text()
    assert page.locator("h2", has_text="未受理的行").inner_text().endswith("（1）")  # the waiver with no reason
    assert page.locator("h2", has_text="已受理的行").inner_text().endswith("（1）")
    assert not dialogs and all(u.startswith("file://") for u in requests)
    page.screenshot(path=str(artifacts / "receipt.png"), full_page=True)


def test_a_county_list_opens_offline_from_its_department_page_and_links_back(browser, report, artifacts):
    page, requests, dialogs = open_page(browser, report / "market.html")
    link = page.locator("a", has_text="230402 向阳区")
    listed = int(link.locator("xpath=../../td[2]").inner_text())
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/market/230402.html")
    assert "市市场监督管理局 · 230402 向阳区" in page.locator("h1").inner_text()
    from reports.render import PAGE_SIZE

    assert visible_rows(page).count() == min(listed, PAGE_SIZE)
    assert page.locator("a", has_text="230402.xlsx").first.get_attribute("href") == "230402.xlsx"
    page.screenshot(path=str(artifacts / "county-list.png"), full_page=False)
    page.click("text=返回总览")
    page.wait_for_load_state("load")
    assert page.url.endswith("/2026-11-27/index.html")
    assert not dialogs and all(u.startswith("file://") for u in requests)
    page.close()


def test_the_monthly_report_and_the_overview_trends_open_offline(browser, report, artifacts):
    from flows.month import report_month

    data = report.parents[1]
    month = report_month(data, "2026-11", today_="2026-12-01")
    page, requests, dialogs = open_page(browser, data / "reports" / "months" / "2026-11" / "index.html")
    assert "统一社会信用代码重错码治理月报（2026-11）" in page.locator("h1").inner_text()
    assert page.locator("tr.dept").count() == 3 and page.locator("tr.city").count() == 1
    assert str(month["city"]["open_end"]) in page.locator("tr.city").inner_text()
    assert page.locator("svg polyline").count() == 3  # one line per department
    page.screenshot(path=str(artifacts / "month-2026-11.png"), full_page=True)
    assert all(u.startswith("file://") for u in requests) and dialogs == []

    run_all(data, run_date="2026-11-28")  # the trend shows the completed nights before tonight
    page, requests, _ = open_page(browser, data / "reports" / "2026-11-28" / "index.html")
    assert page.locator("svg polyline").count() == 1 + 3  # the city's line, and one per department beside it
    page.screenshot(path=str(artifacts / "overview-trends.png"))
    assert all(u.startswith("file://") for u in requests)

"""Fill in a correction form with LibreOffice Calc as a clerk does, and save it (a real spreadsheet round trip).

Run by Debian's /usr/bin/python3 (which has `uno`), not the project's venv:

    python3 tests/calc_roundtrip.py FORM OUT FORMAT ANSWERS_JSON

FORM is our `<source>.csv` or `<source>.xlsx`; FORMAT is `csv-utf8`, `csv-936` (code page 936, what a
Chinese Windows Calc or Excel saves as "CSV") or `xlsx`; ANSWERS_JSON maps a finding id to {header: text}.
Each answer is typed into its cell with `setFormula`, as if typed on the keyboard (Calc turns digits into
a number, as it does for a person).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time


CSV_FILTER = "Text - txt - csv (StarCalc)"
#: comma, double quote, character set (76 UTF-8, 56 code page 936), from line 1
SAVE_OPTIONS = {"csv-utf8": "44,34,76,1", "csv-936": "44,34,56,1"}


def prop(name, value):
    from com.sun.star.beans import PropertyValue  # noqa: PLC0415 (only Debian's python3 has uno)

    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main(form: str, out: str, fmt: str, answers: dict) -> None:
    import uno  # noqa: PLC0415 (only Debian's python3 has uno; the module stays importable for pytest)

    profile = tempfile.mkdtemp(prefix="calc-profile-")
    pipe = f"uscc-calc-{os.getpid()}"
    office = subprocess.Popen(["soffice", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
                               f"-env:UserInstallation=file://{profile}", f"--accept=pipe,name={pipe};urp;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        for _ in range(240):
            try:
                ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except Exception:
                time.sleep(0.25)
        else:
            raise RuntimeError("LibreOffice did not start")
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        load = [prop("Hidden", True)]
        if form.endswith(".csv"):  # how a person opens it: UTF-8 (our BOM), comma, defaults otherwise
            load += [prop("FilterName", CSV_FILTER), prop("FilterOptions", "44,34,76,1")]
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(form)), "_blank", 0, tuple(load))
        sheet = doc.Sheets.getByIndex(0)
        headers = [sheet.getCellByPosition(c, 0).getString().strip() for c in range(40)]
        for row in range(1, 1_000_000):
            key = sheet.getCellByPosition(0, row).getString().strip()
            if not key:
                break
            for header, text in answers.get(key, {}).items():
                sheet.getCellByPosition(headers.index(header), row).setFormula(text)
        url = uno.systemPathToFileUrl(os.path.abspath(out))
        if fmt == "xlsx":
            doc.storeToURL(url, (prop("FilterName", "Calc MS Excel 2007 XML"),))
        else:
            doc.storeToURL(url, (prop("FilterName", CSV_FILTER), prop("FilterOptions", SAVE_OPTIONS[fmt])))
        doc.close(True)
        try:
            desktop.terminate()
        except Exception:
            pass  # the bridge goes away with the office
    finally:
        try:
            office.wait(timeout=30)
        except subprocess.TimeoutExpired:
            office.kill()
            office.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))

"""Rendering of findings: HTML lists, fill-in forms (XLSX/CSV), overview. Decides nothing."""

"""The renewal assessment: an exporter's licence year judged from the kept history.

`assessment.py` is pure (plain data in, a model out, no store and no clock); `render.py`
turns the result into JSON, CSV or a printable HTML page.
"""

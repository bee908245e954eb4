"""Monthly client reports (issue 10): what a client reads once a month, built from the ledger's
figures (`content`), drawn as SVG charts (`charts`) and rendered as HTML, PDF, Markdown or JSON
(`render`). Storing, scheduling and sending them live in the layers above.

Imports only `trackrecord`, `ledger` and itself (tests/test_layers.py).
"""

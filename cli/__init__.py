"""The `trackrecord` command: the top layer, beside the web app.

It may import every layer below it (foundation `trackrecord`, the domain `ledger`, `connectors`,
`workers`, the web app); nothing below imports it. `cli.main` builds the command group.
"""

"""The decision report: its content (`content`), HTML, chart and PDF (`rendering`), and
`replay report` itself (`reporting`)."""

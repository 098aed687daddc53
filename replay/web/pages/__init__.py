"""The console's pages, one router each, and what they share (`shared`):

| module | pages |
|---|---|
| `sign_in` | `/login`, `/logout` |
| `find` | `/` and `/find`: a person's decisions |
| `decision` | a decision, its reasons, its re-execution, its review |
| `what_if` | a decision asked again with edited inputs |
| `sweep` | one or two numbers of a decision swept over a range |
| `options` | the changes that would have reached the favourable decision |
| `report` | the decision's report as a PDF (compliance) |
| `verify` | `/verify`: the ledger's chain (compliance) |
| `users` | the console's users (admin) |
"""

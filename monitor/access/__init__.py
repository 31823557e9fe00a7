"""Who may see what: API tokens, their roles, and the exporters an automaker answers for.

OBLIGATIONS.md, "Who answers for what": an automaker sees its own exporters and the
distributors they authorised; regulators and reviewers see every exporter.
"""

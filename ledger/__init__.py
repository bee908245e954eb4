"""The domain: the ledger of promises (rules that settle them) and the figures derived from it."""

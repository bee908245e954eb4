"""Titles of the demo's made-up work items (no Jira-key-like words: a PR title naming one
would link it)."""

GH_TITLES = (
    "Export the ledger as CSV",
    "Badge shows a stale rate",
    "Slow record query on PostgreSQL",
    "Retry failed deliveries from the operator page",
    "Timezone picker for teams",
    "Paginate the commitments list",
    "Single sign-on for client users",
    "Dark mode for wall screens",
    "Audit log of exclusions",
    "Webhook secret rotation",
    "Rate limit the public badge",
    "Import milestones from a spreadsheet",
    "Weekly digest email",
    "Mobile layout of the team page",
    "Archive old milestones",
    "Faster startup on large ledgers",
)
JIRA_TITLES = (
    "Checkout fails for saved cards",
    "Invoice PDF misses the VAT line",
    "Search results ignore accents",
    "Push notifications on Android 14",
    "Onboarding checklist",
    "Offline mode for the order list",
    "Localise the settings screen",
    "Crash when the camera is denied",
    "Bulk edit of price lists",
    "Two-factor sign-in",
    "Shipping estimate per region",
    "Accessibility pass on forms",
)

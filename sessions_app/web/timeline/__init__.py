"""The chat page's timeline read model: ``fold`` (the page's state, folded from the session's
events), ``words`` (how those states read) and ``render`` (the page and each live event's
fragments, drawn from the fold through the partials)."""

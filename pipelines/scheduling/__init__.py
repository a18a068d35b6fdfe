"""Who runs next on the model worker: `lanes` (live, long, job; minimum shares; the policy) and
`scheduler` (the one engine thread, preemption between model passes). What runs in the lanes is
in `engines.lanes` (docs/scheduling.md).

May import: observe.
"""

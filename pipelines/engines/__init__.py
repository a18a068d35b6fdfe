"""The models. `contract` is what every engine promises (one outcome per item, in order, a bad
item failing alone); `extractive` (the default: MiniLM `encoder`, `concepts` coverage) and
`abstractive` (seq2seq or causal LM) keep it; `grouping` groups items by what must match and caps
a batch by tokens; `device` picks where and in which precision; `factory` builds the configured
engine; `lanes` queues the model worker's calls by lane and picks the entry's lane. Only these
modules touch torch.

May import: text, observe, scheduling.
"""

"""Many documents at once. `core` is the one preprocess/forward/postprocess path that `/batch`,
server jobs, the `summarize-batch` CLI (`cli`, `backends`, `output`) and Ray Data (`ray_data`)
share; `inprocess` builds the whole pipeline in one process, from the same model store, for
work that needs no server.

May import: observe, text, engines.
"""

"""Priority between live requests, long documents and jobs on the model worker (docs/scheduling.md)."""

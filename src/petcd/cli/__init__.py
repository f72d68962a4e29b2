"""Command-line tools: etcdctl (talks to servers through petcd.client) and, later, etcdutl."""

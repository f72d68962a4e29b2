"""etcd's multi-version key-value store on the Backend port (see ``petcd.mvcc.kvstore``)."""

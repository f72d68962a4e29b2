"""etcd's client-facing gRPC API (KV, Watch, Lease, Cluster, Maintenance, Auth, Election, Lock, health),
served over a `petcd.server.facade.EtcdFacade`. Entry point: `petcd.api.server.build_grpc_server`."""

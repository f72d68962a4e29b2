"""Generated protobuf and gRPC code for petcd (do not edit; see scripts/gen_proto.py).

Client API packages keep etcd's protobuf package names (etcdserverpb, mvccpb, authpb,
v3electionpb, v3lockpb; plus membershippb and leasepb for the server); petcd's own
formats live in raftpb, walpb and snappb (protobuf packages petcd.*)."""

-- 005: no published HTTP port (issue 10 item 2). nginx reaches an instance at
-- an address on its per-user Docker network that the worker assigns and keeps
-- here (and gives Docker at container create, so it survives stop, start,
-- restart and a dockerd restart); the proxy goes to upstream_host and the
-- template's http_port. NULL until assigned, and for instances without an
-- HTTP port. A per-instance value the worker decides: a remote node could
-- later publish on a private address instead.
--
-- Instances from before this change have an 'http' instance_ports row and a
-- container publishing that port on host_address; their next start (or
-- restart) assigns the address, releases that row and makes the container
-- again without the binding. Until then their route keeps the host port.
ALTER TABLE instances ADD COLUMN upstream_host inet;
-- One live instance per address on a node (user networks of one Docker never
-- overlap, so this is per network too); the worker draws again on a clash.
CREATE UNIQUE INDEX instances_node_upstream ON instances(node, upstream_host)
    WHERE upstream_host IS NOT NULL AND status <> 'deleted';

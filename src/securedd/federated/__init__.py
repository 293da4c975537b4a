"""Federated dataset distillation (SFDD): many data owners distil one synthetic set.

The pieces that do not need Flower live here and are tested on their own: how the real
data is split among clients (:mod:`~securedd.federated.shards`), how the server combines
the clients' synthetic sets and which replies it refuses
(:mod:`~securedd.federated.aggregate`), and a client's round
(:mod:`~securedd.federated.client`: the matching method's own loop from the global set,
with the client's defence from :mod:`securedd.defences` as hooks).
"""

"""Federated dataset distillation (SFDD): many data owners distil one synthetic set.

The pieces that do not need Flower live here and are tested on their own: how the real
data is split among clients (:mod:`~securedd.federated.shards`), which replies the server
refuses (:mod:`~securedd.federated.screening`), how it combines the rest
(:mod:`~securedd.federated.aggregate`, :mod:`~securedd.federated.trust`), the server's
rounds over any transport (:mod:`~securedd.federated.server`), and a client's round
(:mod:`~securedd.federated.client`: the matching method's own loop from the global set,
with the client's defence from :mod:`securedd.defences` as hooks). The Flower apps are
:mod:`~securedd.federated.apps` and :mod:`~securedd.federated.deploy`.
"""

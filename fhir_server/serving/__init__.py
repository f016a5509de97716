"""``medicore serve``: one process, or a supervisor and N worker processes.

With ``--workers 1`` the server is one uvicorn process, as it always was. With more, the
supervisor (:mod:`.supervisor`) binds the HTTP and MLLP sockets, does the once-only work
(schema, demo accounts, HL7 recovery), runs the background duties (the AuditEvent
indexer) once, and keeps N workers (:mod:`.worker`) serving on the shared sockets,
restarting any that dies. Every guarantee between workers comes from the store.
"""

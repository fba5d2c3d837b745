"""Reminder batches: thousands of personalised SMS from one task, paced, never twice, reported.

* :mod:`.operator`: :class:`OctopodsSendBatchOperator`, the Airflow face of it;
* :mod:`.rows`: the recipient rows and the opt-out list, loaded as data;
* :mod:`.runner`: the try's sends on an event loop in a helper thread, progress, a clean stop;
* :mod:`.sender`: bounded concurrency over the async client, the send record written in chunks;
* :mod:`.report`: the XCom summary, the CSV report and the counts line.

What is sent is planned by :mod:`airflow_provider_octopods.api.batch` (pure), and what may go out
is decided by :class:`airflow_provider_octopods.send_record.SendGuard`.
"""

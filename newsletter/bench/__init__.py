"""The delivery bench: ``newsletter bench send`` (see ``run.py``).

sink.py runs Postfix's smtp-sink and smtp-source, seed.py fills the bench database,
workers.py starts and watches the workers, run.py puts it together, commands.py is the CLI.
"""

"""The email queue: email records, SMTP delivery, suppression (not `email/`: the standard
library owns that name)."""

"""Alert rules over the deployment's figures: fired once when a condition starts and once
when it clears, to a webhook and/or by email through the email queue; history kept."""

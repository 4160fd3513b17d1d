-- 011: a template may let its containers gain privileges through setuid
-- binaries (sudo in berth-demo/ssh), by an admin's explicit false. Every
-- existing template keeps Docker's no-new-privileges, which all containers
-- had (README, "Security"); the gained root still has only the template's
-- capabilities.
ALTER TABLE templates ADD COLUMN no_new_privileges boolean NOT NULL DEFAULT true;

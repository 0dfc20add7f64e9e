"""Real non-compliant changes for hardened lab hosts: each names the control that must fail and the text its
finding must show, so a PASS is tested the way a hostile reviewer would break it (on the host, not in evidence).

Every change is a shell command run as root inside the lab container. `SAVED` lists the files the changes edit:
they are archived before and put back after, with the files the changes add removed and the firewall reloaded.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutation(NamedTuple):
    host: str
    control: str
    change: str  # what an attacker or a careless administrator did
    command: str
    shows: str  # text the failing finding's reason or evidence must contain


SAVED = (
    "/etc/ssh/sshd_config",
    "/etc/pam.d/common-auth",
    "/etc/pam.d/common-password",
    "/etc/pam.d/sshd",
    "/etc/rsyslog.d/60-medinfra-forward.conf",
    "/etc/login.defs",
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
)
ADDED = (
    "/etc/pam.d/mutation-extra",
    "/etc/sudoers.d/99-mutation",
    "/etc/sudoers.d/98-mutation",
    "/etc/apt/apt.conf.d/99mutation",
    "/etc/profile.d/00-mutation.sh",
    "/etc/audit/rules.d/00-mutation.rules",
    "/etc/audit/rules.d/99-mutation.rules",
    "/etc/systemd/journald.conf.d/99-mutation.conf",
)
RELOAD_FIREWALL = "nft -f /etc/medinfra/nftables.nft"

MUTATIONS = (
    # sshd: the effective configuration for the connections that Match blocks single out
    Mutation("his-app", "sshd_root_login_disabled", "a Match block lets root in from one network",
             "printf 'Match Address 10.0.0.0/8\\n    PermitRootLogin yes\\n    PasswordAuthentication yes\\n'"
             " >> /etc/ssh/sshd_config", "addr=10."),
    Mutation("his-app", "sshd_password_authentication_disabled", "the same Match block allows passwords",
             "true", "passwordauthentication"),
    Mutation("his-app", "sshd_max_auth_tries_limited", "a Match block for one user raises MaxAuthTries",
             "printf 'Match User medinfra\\n    MaxAuthTries 10\\n' >> /etc/ssh/sshd_config", "user=medinfra"),
    Mutation("his-app", "sshd_forwarding_disabled", "a Match on the local port turns X11 forwarding on",
             "printf 'Match LocalPort 22\\n    X11Forwarding yes\\n' >> /etc/ssh/sshd_config", "x11forwarding"),
    Mutation("his-app", "sshd_access_limited_to_groups", "AllowGroups * admits every account",
             "sed -i '1i AllowGroups *' /etc/ssh/sshd_config", "'*'"),
    Mutation("his-app", "sshd_config_protected", "sshd_config made world-readable",
             "chmod 0644 /etc/ssh/sshd_config", "0644"),
    # accounts and PAM, as libpam runs the stacks
    Mutation("his-app", "password_quality_enforced", "weak arguments on the pam_pwquality line",
             "sed -i 's/pam_pwquality.so retry=3/pam_pwquality.so retry=3 minlen=6/' /etc/pam.d/common-password",
             "6"),
    Mutation("his-app", "pam_unix_nullok_removed", "sshd @includes a PAM file with nullok",
             "printf 'auth sufficient pam_unix.so nullok\\n' > /etc/pam.d/mutation-extra && "
             "sed -i '1i @include mutation-extra' /etc/pam.d/sshd", "nullok"),
    Mutation("his-app", "pam_auth_not_bypassed", "pam_permit sufficient at the top of common-auth",
             "sed -i '1i auth sufficient pam_permit.so' /etc/pam.d/common-auth", "pam_permit.so"),
    Mutation("his-app", "account_lockout_configured", "the faillock preauth line made optional",
             "sed -i 's/^auth\\trequisite pam_faillock.so preauth/auth\\toptional pam_faillock.so preauth/'"
             " /etc/pam.d/common-auth", "optional"),
    Mutation("his-app", "shadow_group_empty", "an account whose primary group is shadow",
             "useradd -M -N -g shadow -s /usr/sbin/nologin mutant", "mutant"),
    Mutation("his-app", "accounts_root_only_uid0", "a second account with uid 0",
             "useradd -o -u 0 -M -N -s /usr/sbin/nologin toor", "toor"),
    Mutation("pacs-01", "shadow_group_empty", "an operator added to the shadow group",
             "gpasswd -a medinfra shadow", "medinfra"),
    Mutation("pacs-01", "passwd_group_files_protected", "/etc/passwd writable by everyone",
             "chmod 0666 /etc/passwd", "0666"),
    Mutation("his-app", "shadow_files_protected", "/etc/shadow readable by everyone",
             "chmod 0644 /etc/shadow", "0644"),
    Mutation("his-app", "login_defs_password_aging", "passwords never expire",
             "sed -i 's/^PASS_MAX_DAYS.*/PASS_MAX_DAYS\\t99999/' /etc/login.defs", "99999"),
    Mutation("his-app", "shell_idle_timeout", "an earlier profile script fixes TMOUT=0 read-only",
             "printf 'TMOUT=0\\nreadonly TMOUT\\n' > /etc/profile.d/00-mutation.sh", "tmout"),
    # sudo, as sudo reads its files
    Mutation("his-app", "sudo_uses_pty", "a later drop-in with Defaults !use_pty",
             "printf 'Defaults !use_pty\\n' > /etc/sudoers.d/99-mutation && chmod 0440 /etc/sudoers.d/99-mutation",
             "use_pty"),
    Mutation("his-app", "sudo_reauthentication_required", "one user needs no password for sudo",
             "printf 'Defaults:medinfra !authenticate\\n' > /etc/sudoers.d/98-mutation && "
             "chmod 0440 /etc/sudoers.d/98-mutation", "authenticate_disabled"),
    # audit: the rules in force, not the lines on disk
    Mutation("his-app", "audit_rules_identity", "a never rule placed before the watches suppresses /etc/shadow",
             "printf -- '-a never,exit -F path=/etc/shadow\\n' > /etc/audit/rules.d/00-mutation.rules", "shadow"),
    Mutation("his-app", "audit_rules_not_suppressed", "the same never rule, named as the cause",
             "true", "-a never,exit -F path=/etc/shadow"),
    Mutation("pacs-01", "audit_rules_privilege_escalation", "auditing switched off with -e 0 in a late file",
             "printf -- '-e 0\\n' > /etc/audit/rules.d/99-mutation.rules", "auditd.effective.rules"),
    Mutation("pacs-01", "audit_rules_not_suppressed", "the same -e 0, named as the cause", "true", "-e 0"),
    # logging and updates
    Mutation("his-app", "log_forwarding_configured", "the forward action commented out in a /* */ block",
             "sed -i 's|^action(|/* action(|; s|action.resumeRetryCount=\"-1\")|action.resumeRetryCount=\"-1\") */|'"
             " /etc/rsyslog.d/60-medinfra-forward.conf", "logging.forwards"),
    Mutation("his-app", "journald_persistent", "a drop-in keeps the journal in memory only",
             "printf '[Journal]\\nStorage=volatile\\n' > /etc/systemd/journald.conf.d/99-mutation.conf", "volatile"),
    Mutation("his-app", "unattended_security_upgrades", "#clear empties the unattended-upgrades origins",
             "printf '#clear Unattended-Upgrade::Origins-Pattern;\\n' > /etc/apt/apt.conf.d/99mutation",
             "origins_patterns"),
    Mutation("pacs-01", "unattended_security_upgrades", "a lower-case key turns unattended upgrades off",
             "printf 'apt::periodic::unattended-upgrade \"0\";\\n' > /etc/apt/apt.conf.d/99mutation",
             "periodic_unattended_upgrade"),
    # the firewall, evaluated as the kernel does
    Mutation("pacs-01", "firewall_ssh_management_only", "SSH accepted from 0.0.0.0/0",
             "nft insert rule inet medinfra input ip saddr 0.0.0.0/0 tcp dport 22 accept", "0.0.0.0/0"),
    Mutation("his-db", "host_firewall_default_drop", "a jump to a chain that accepts everything",
             "nft add chain inet medinfra mutation && nft add rule inet medinfra mutation accept && "
             "nft insert rule inet medinfra input jump mutation", "mutation"),
    Mutation("his-db", "firewall_ssh_management_only", "the same jump lets SSH in from everywhere",
             "true", "mutation"),
    Mutation("ws-01", "host_firewall_default_drop", "medinfra's table made dormant",
             "nft add table inet medinfra '{ flags dormant; }'", "dormant"),
    Mutation("guest-01", "firewall_ssh_management_only", "ct state new accepted before the SSH rule",
             "nft insert rule inet medinfra input ct state new accept", "ct state"),
    Mutation("his-app", "firewall_ssh_management_only", "SSH accepted on eth0, the interface every zone reaches it by",
             "nft 'insert rule inet medinfra input iifname \"eth0\" tcp dport 22 accept'", 'iifname "eth0"'),
    Mutation("pacs-01", "firewall_listeners_limited_to_declared_flows", "the guest Wi-Fi let in to the DICOM port",
             "nft 'insert rule inet medinfra input ip saddr 10.231.60.0/24 tcp dport 104 accept'",
             "tcp/104 (nginx) from zone guest"),
    # the zone firewall's forward hook
    Mutation("fw", "zone_firewall_forward_default_drop", "a port accepted between all zones on every eth* interface",
             "nft 'insert rule inet medinfra forward iifname \"eth*\" tcp dport 4444 accept'", 'iifname "eth*"'),
    Mutation("fw", "zone_firewall_egress_restricted", "everything to addresses outside 10.0.0.0/8 routed",
             "nft 'insert rule inet medinfra forward ip daddr != 10.0.0.0/8 accept'", "!= 10.0.0.0/8"),
)

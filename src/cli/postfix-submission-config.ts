// The master.cf `submission` service `mailmapd postfix-config` prints: port 587 for the
// users' own mail clients, SMTP AUTH only (through mailmapd's auth socket, set in main.cf by
// `mailmapd dovecot-config`) and only after STARTTLS, and a sender only from the addresses
// the login owns or was granted (smtpd_sender_login_maps, the `senders` map).

/** `senders`: the Postfix table of mailmapd's senders map, as main.cf names it (null: no listener). */
const submissionService = (senders: string | null) => [
  'submission inet n       -       y       -       -       smtpd',
  '  -o syslog_name=postfix/submission',
  '  -o smtpd_tls_security_level=encrypt',
  '  -o smtpd_sasl_auth_enable=yes',
  '  -o smtpd_tls_auth_only=yes',
  '  -o smtpd_client_restrictions=permit_sasl_authenticated,reject',
  // Every client here is authenticated; the map is main.cf's too, so that proxymap's
  // default proxy_read_maps allows it.
  ...(senders === null ? [] : [`  -o smtpd_sender_login_maps=${senders}`]),
  '  -o smtpd_sender_restrictions=reject_authenticated_sender_login_mismatch',
  '  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject',
  '  -o milter_macro_daemon_name=ORIGINATING',
];

export function submissionSection(senders: string | null): string[] {
  return [
    '',
    '# ---- /etc/postfix/master.cf: mail submission by your users on port 587 ----',
    '# TLS is required here (smtpd_tls_security_level=encrypt) and AUTH is offered only after',
    '# STARTTLS (smtpd_tls_auth_only=yes). It needs a certificate in main.cf:',
    '#   smtpd_tls_cert_file = /etc/ssl/certs/mail.example.org.pem',
    '#   smtpd_tls_key_file = /etc/ssl/private/mail.example.org.key',
    "# (Debian's default is the ssl-cert package's snakeoil pair). Without a usable one smtpd",
    '# offers no STARTTLS and therefore no AUTH, and says why only in its log.',
    '# The SASL lines (smtpd_sasl_type, smtpd_sasl_path) come from `mailmapd dovecot-config`.',
    '# A login may use as MAIL FROM only what the senders map gives it: its own addresses, the',
    '# aliases it receives, and its grants (`mailmapd send-as`).',
    ...submissionService(senders),
  ];
}

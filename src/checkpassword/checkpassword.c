/*
 * mailmapd-checkpassword: Dovecot 2.3's checkpassword passdb/userdb program for mailmapd.
 *
 * Dovecot forks it for every login and every userdb lookup, so it is C: it starts in about
 * a millisecond and fits in any vsz_limit (Node cannot even start under Dovecot's default
 * 256 MB). It only relays: the daemon decides.
 *
 *   fd 3 in:   user \0 password \0 timestamp \0       (lookups: user \0 \0 \0)
 *   socket:    -s SOCKET, else $MAILMAPD_CHECKPASSWORD_SOCKET, else
 *              unix:/run/mailmapd/checkpassword; also inet:127.0.0.1:PORT.
 *   bound:     -t SECONDS (1 to 3600, default 20): connecting, asking and reading the
 *              reply take no longer, whatever the daemon does; then exit 111.
 *   request:   4-byte big-endian length, then NUL-terminated fields
 *              "1" mode user password service remote_ip local_ip secured
 *              (mode "auth", or "lookup" when AUTHORIZED=1); src/checkpassword/wire.ts
 *   reply:     the same framing: "ok" user= home= uid= gid= [quota_rule=] | "fail" | "temp" reason=
 *   success:   sets USER, HOME, userdb_uid, userdb_gid, userdb_quota_rule and EXTRA (and
 *              AUTHORIZED=2 for lookups), then execs the reply program (the rest of argv,
 *              which Dovecot appends: checkpassword-reply). Without one it writes the
 *              fields to fd 4 itself.
 *   exit:      authenticate: 0 ok, 1 bad password or unknown user, 111 temporary failure;
 *              lookup (AUTHORIZED=1): 2 found, 3 unknown user, 111 temporary failure.
 *
 * Nothing here ever prints the password.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_TEMP 111
#define DEFAULT_SOCKET "unix:/run/mailmapd/checkpassword"
/* Dovecot refuses user + password over 512 bytes before forking us; leave room for the rest. */
#define MAX_INPUT 2048
#define MAX_REPLY 65536
/* Longer than any sane hash verification with a queue in front of it, shorter than forever:
   Dovecot 2.3 has no timeout of its own for this program. */
#define TIMEOUT_SECONDS 20
#define WIRE_VERSION "1"

static const char *prog = "mailmapd-checkpassword";

/* CLOCK_MONOTONIC milliseconds at which the whole exchange must be over. */
static long long deadline_ms;
static long long timeout_seconds = TIMEOUT_SECONDS;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(void)
{
	long long left = deadline_ms - now_ms();
	return left <= 0 ? 0 : (int)left;
}

/*
 * connect() bounded by the deadline. A blocking connect waits as long as the kernel lets
 * it: forever on a UNIX socket whose listener is stopped with its backlog full, minutes on
 * TCP. So: non-blocking, then poll. A full UNIX backlog answers EAGAIN at once (there is
 * nothing to poll for): retried every 50 ms until the deadline, as the daemon may catch up.
 * The socket is left blocking again on success.
 */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	for (;;) {
		if (connect(fd, sa, len) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			int wait = remaining_ms();
			if (wait == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			poll(NULL, 0, wait < 50 ? wait : 50);
			continue;
		}
		if (errno != EINPROGRESS)
			return -1;
		{
			struct pollfd p = { fd, POLLOUT, 0 };
			int err = 0, r;
			socklen_t elen = sizeof(err);
			do
				r = poll(&p, 1, remaining_ms());
			while (r < 0 && errno == EINTR);
			if (r < 0)
				return -1;
			if (r == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				return -1;
			if (err != 0) {
				errno = err;
				return -1;
			}
		}
		break;
	}
	return fcntl(fd, F_SETFL, flags);
}

static void die_temp(const char *what)
{
	if (errno != 0)
		fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	else
		fprintf(stderr, "%s: %s\n", prog, what);
	exit(EXIT_TEMP);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; -1 on error or early EOF. */
static int read_exact(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_bounded(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* HOST:PORT with a numeric IPv4 or [IPv6] host (or localhost): no resolver, no NSS. */
static int connect_inet(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss;
	socklen_t len;
	size_t hlen;
	char *end;
	long port;
	int fd;

	if (colon == NULL || colon == spec) {
		errno = EINVAL;
		return -1;
	}
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {
		spec++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535) {
		errno = EINVAL;
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_bounded(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int connect_daemon(const char *spec)
{
	int fd, left;
	struct timeval tv;

	deadline_ms = now_ms() + timeout_seconds * 1000LL;
	if (strncmp(spec, "unix:", 5) == 0)
		fd = connect_unix(spec + 5);
	else if (spec[0] == '/' || spec[0] == '.')
		fd = connect_unix(spec);
	else
		fd = connect_inet(strncmp(spec, "inet:", 5) == 0 ? spec + 5 : spec);
	if (fd >= 0) {
		/* What is left of the one bound for the request and its reply (at least 1 s). */
		left = remaining_ms();
		if (left < 1000)
			left = 1000;
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static const char *env_or_empty(const char *a, const char *b)
{
	const char *v = getenv(a);
	if ((v == NULL || *v == '\0') && b != NULL)
		v = getenv(b);
	return v == NULL ? "" : v;
}

/* Appends a NUL-terminated field to the request; 0 on success. */
static int add_field(char *buf, size_t cap, size_t *len, const char *field)
{
	size_t n = strlen(field) + 1;
	if (*len + n > cap)
		return -1;
	memcpy(buf + *len, field, n);
	*len += n;
	return 0;
}

/* checkpassword-reply style output on fd 4, tab-escaped. */
static void put_escaped(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\001': fputs("\0011", f); break;
		case '\t': fputs("\001t", f); break;
		case '\n': fputs("\001n", f); break;
		case '\r': fputs("\001r", f); break;
		default: fputc(*s, f);
		}
	}
}

struct reply_fields {
	const char *user, *home, *uid, *gid, *quota_rule;
};

int main(int argc, char **argv)
{
	static char input[MAX_INPUT + 1];
	static char req[4 + MAX_INPUT + 1024];
	static char reply[MAX_REPLY + 1];
	const char *socket_spec = NULL;
	const char *user, *password, *mode;
	struct reply_fields rf = { NULL, NULL, NULL, NULL, NULL };
	size_t input_len = 0, req_len = 4, pos;
	uint32_t n32;
	int lookup, fd, argi;
	char *code;

	for (argi = 1; argi < argc; argi++) {
		if (strcmp(argv[argi], "--") == 0) {
			argi++;
			break;
		} else if (strcmp(argv[argi], "-s") == 0 && argi + 1 < argc) {
			socket_spec = argv[++argi];
		} else if (strncmp(argv[argi], "-s", 2) == 0 && argv[argi][2] != '\0') {
			socket_spec = argv[argi] + 2;
		} else if (strcmp(argv[argi], "-t") == 0 && argi + 1 < argc) {
			char *end;
			timeout_seconds = strtoll(argv[++argi], &end, 10);
			if (*end != '\0' || timeout_seconds < 1 || timeout_seconds > 3600) {
				fprintf(stderr, "%s: -t takes whole seconds, 1 to 3600\n", prog);
				return EXIT_TEMP;
			}
		} else {
			break;
		}
	}
	if (socket_spec == NULL) {
		socket_spec = getenv("MAILMAPD_CHECKPASSWORD_SOCKET");
		if (socket_spec == NULL || *socket_spec == '\0')
			socket_spec = DEFAULT_SOCKET;
	}
	lookup = strcmp(env_or_empty("AUTHORIZED", NULL), "1") == 0;
	mode = lookup ? "lookup" : "auth";

	/* fd 3: user\0password\0timestamp\0 (the timestamp is always empty from Dovecot). */
	for (;;) {
		ssize_t n = read(3, input + input_len, MAX_INPUT + 1 - input_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_temp("cannot read fd 3 (this program is run by Dovecot's checkpassword passdb)");
		if (n == 0)
			break;
		input_len += (size_t)n;
		if (input_len > MAX_INPUT) {
			errno = 0;
			die_temp("input on fd 3 too long");
		}
	}
	close(3);
	input[input_len] = '\0';
	user = input;
	pos = strlen(user);
	if (pos >= input_len) {
		errno = 0;
		die_temp("malformed input on fd 3");
	}
	password = input + pos + 1;
	if (pos + 1 + strlen(password) >= input_len && !lookup) {
		errno = 0;
		die_temp("malformed input on fd 3");
	}

	if (add_field(req, sizeof(req), &req_len, WIRE_VERSION) < 0 ||
	    add_field(req, sizeof(req), &req_len, mode) < 0 ||
	    add_field(req, sizeof(req), &req_len, user) < 0 ||
	    add_field(req, sizeof(req), &req_len, lookup ? "" : password) < 0 ||
	    add_field(req, sizeof(req), &req_len, env_or_empty("SERVICE", NULL)) < 0 ||
	    add_field(req, sizeof(req), &req_len, env_or_empty("TCPREMOTEIP", "REMOTE_IP")) < 0 ||
	    add_field(req, sizeof(req), &req_len, env_or_empty("TCPLOCALIP", "LOCAL_IP")) < 0 ||
	    add_field(req, sizeof(req), &req_len, *env_or_empty("AUTH_SECURED", NULL) != '\0' ? "1" : "") < 0 ||
	    /* A master passdb's request: USER is the master user, this the mailbox to log in as. */
	    add_field(req, sizeof(req), &req_len, env_or_empty("AUTH_LOGIN_USER", NULL)) < 0) {
		errno = 0;
		die_temp("request too long");
	}
	explicit_bzero((char *)password, strlen(password));
	n32 = htonl((uint32_t)(req_len - 4));
	memcpy(req, &n32, 4);

	fd = connect_daemon(socket_spec);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot connect to mailmapd at %s: %s\n", prog, socket_spec, strerror(errno));
		explicit_bzero(req, sizeof(req));
		return EXIT_TEMP;
	}
	if (write_all(fd, req, req_len) < 0) {
		explicit_bzero(req, sizeof(req));
		die_temp("cannot send the request to mailmapd");
	}
	explicit_bzero(req, sizeof(req));
	if (read_exact(fd, (char *)&n32, 4) < 0)
		die_temp("no reply from mailmapd");
	n32 = ntohl(n32);
	if (n32 == 0 || n32 > MAX_REPLY) {
		errno = 0;
		die_temp("malformed reply from mailmapd");
	}
	if (read_exact(fd, reply, n32) < 0)
		die_temp("truncated reply from mailmapd");
	close(fd);
	if (reply[n32 - 1] != '\0') {
		errno = 0;
		die_temp("malformed reply from mailmapd");
	}

	code = reply;
	if (strcmp(code, "fail") == 0)
		return lookup ? 3 : 1;
	if (strcmp(code, "temp") == 0) {
		const char *reason = code + strlen(code) + 1;
		if ((size_t)(reason - reply) < n32 && strncmp(reason, "reason=", 7) == 0)
			reason += 7;
		else
			reason = "";
		fprintf(stderr, "%s: temporary failure: %s\n", prog, reason);
		return EXIT_TEMP;
	}
	if (strcmp(code, "ok") != 0) {
		errno = 0;
		die_temp("unexpected reply from mailmapd");
	}
	for (pos = strlen(code) + 1; pos < n32; pos += strlen(reply + pos) + 1) {
		char *f = reply + pos;
		if (strncmp(f, "user=", 5) == 0) rf.user = f + 5;
		else if (strncmp(f, "home=", 5) == 0) rf.home = f + 5;
		else if (strncmp(f, "uid=", 4) == 0) rf.uid = f + 4;
		else if (strncmp(f, "gid=", 4) == 0) rf.gid = f + 4;
		else if (strncmp(f, "quota_rule=", 11) == 0) rf.quota_rule = f + 11;
	}
	if (rf.user == NULL || rf.home == NULL || rf.uid == NULL || rf.gid == NULL) {
		errno = 0;
		die_temp("incomplete reply from mailmapd");
	}

	if (argi < argc) {
		/* Dovecot's checkpassword-reply (or any reply program) turns these into fd 4. */
		if (setenv("USER", rf.user, 1) < 0 || setenv("HOME", rf.home, 1) < 0 ||
		    setenv("userdb_uid", rf.uid, 1) < 0 || setenv("userdb_gid", rf.gid, 1) < 0 ||
		    (rf.quota_rule != NULL && setenv("userdb_quota_rule", rf.quota_rule, 1) < 0) ||
		    setenv("EXTRA", rf.quota_rule != NULL ? "userdb_uid userdb_gid userdb_quota_rule" : "userdb_uid userdb_gid", 1) < 0 ||
		    (lookup && setenv("AUTHORIZED", "2", 1) < 0))
			die_temp("setenv");
		execvp(argv[argi], argv + argi);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[argi], strerror(errno));
		return EXIT_TEMP;
	} else {
		FILE *out = fdopen(4, "w");
		if (out == NULL)
			die_temp("cannot open fd 4");
		fputs("user=", out); put_escaped(out, rf.user);
		fputs("\tuserdb_home=", out); put_escaped(out, rf.home);
		fputs("\tuserdb_uid=", out); put_escaped(out, rf.uid);
		fputs("\tuserdb_gid=", out); put_escaped(out, rf.gid);
		if (rf.quota_rule != NULL) {
			fputs("\tuserdb_quota_rule=", out);
			put_escaped(out, rf.quota_rule);
		}
		fputs("\t", out);
		if (fclose(out) != 0)
			die_temp("cannot write fd 4");
		return lookup ? 2 : 0;
	}
}

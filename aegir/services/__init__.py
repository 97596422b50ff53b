"""Services a server provides (http, db): each renders, writes, tests and reloads through a transport."""

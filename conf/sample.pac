// A sample PAC file for a shir node (proxy.pac_url, or scriptLocation in
// diahost.exe.config). shir runs it in a confined helper: no file, network or
// process access; DNS questions (dnsResolve, isResolvable, isInNet with a name)
// are answered by shird within 2 s each, and each call has 5 s in all.
// Check any destination with: shirctl proxy explain https://HOST/
//
// The script sees "scheme://host[:port]/" only (no path, no query).

function FindProxyForURL(url, host) {
	// names without a dot and the company's own domain: direct
	if (isPlainHostName(host) || dnsDomainIs(host, ".corp.contoso.com"))
		return "DIRECT";

	// private address literals: direct. The test keeps names away from
	// isInNetEx, which would resolve them (a DNS question per new host).
	if (/^[0-9.]+$/.test(host) &&
	    (isInNetEx(host, "10.0.0.0/8") || isInNetEx(host, "192.168.0.0/16")))
		return "DIRECT";

	// the Azure relay and Data Factory: two proxies, the second when the
	// first cannot be reached (it is then tried last for 5 minutes)
	if (shExpMatch(host, "*.servicebus.windows.net") ||
	    shExpMatch(host, "*.datafactory.azure.net"))
		return "PROXY proxy1.corp.contoso.com:8080; PROXY proxy2.corp.contoso.com:8080";

	// office hours (local time) through the filtering proxy
	if (weekdayRange("MON", "FRI") && timeRange(8, 18))
		return "PROXY filter.corp.contoso.com:3128; DIRECT";

	return "PROXY proxy1.corp.contoso.com:8080; DIRECT";
}

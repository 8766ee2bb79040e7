// Test only (spec §10 step 6): the npm clients renew their token every hour;
// shrink that interval to 1 s so renewToken can be observed.
const si = global.setInterval;
global.setInterval = (fn, ms, ...a) => si(fn, ms === 3600000 ? 1000 : ms, ...a);

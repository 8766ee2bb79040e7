dist_man_MANS += man/shird.8 man/shirctl.8 man/shird.conf.5

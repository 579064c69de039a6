mod backchannel;

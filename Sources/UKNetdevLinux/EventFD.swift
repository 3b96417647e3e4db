import UKNetdev
